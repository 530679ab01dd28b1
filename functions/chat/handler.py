"""chat: the AI tutor. Answers only from the caller's course material, with page citations; guides
rather than hands out answers; refuses assessed work and what the material does not cover."""

from pydantic import BaseModel, ConfigDict, Field

from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("chat", "Ask the AI tutor")


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=20000)
    session_id: str | None = Field(None, max_length=36)
    course: str | None = Field(None, max_length=100)


class Citation(BaseModel):
    document_id: str
    title: str
    page: int
    page_url: str | None = None


class ChatOut(BaseModel):
    session_id: str
    answer: str
    citations: list[Citation]
    refused: bool
    reason: str | None = Field(None, description="integrity | not_in_material | flagged when refused")
    hint_level: int | None = Field(None, description="0 hint, 1 stronger hint, 2 worked explanation")


@app.post("/", response_model=ChatOut,
          responses={404: {"description": "Unknown or another user's session"},
                     409: {"description": "The profile has no faculty/semester yet"}})
def chat(body: ChatIn, caller: CurrentUser) -> ChatOut:
    from aiteacher.db import transaction
    from aiteacher.tutor.service import chat_turn

    with transaction() as session:
        result = chat_turn(session, caller, body.message, body.session_id, body.course)
    return ChatOut(session_id=result.session_id, answer=result.answer,
                   citations=[Citation(**c) for c in result.citations], refused=result.refused,
                   reason=result.reason, hint_level=result.hint_level)


handler = lambda_handler(app)
