"""chat-session: the caller's own tutoring sessions: the list (newest first), one session's history and
learning state; DELETE hides it."""

from fastapi import Query, Response
from pydantic import BaseModel, Field

from aiteacher.replies import ChatSessionOut
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("chat-session", "List, read or delete your tutoring sessions")


class LastMessage(BaseModel):
    role: str
    preview: str
    created_at: str


class SessionSummary(BaseModel):
    id: str
    course: str | None
    title: str = Field(description="The session's first question, shortened")
    last_message: LastMessage | None
    message_count: int
    hint_level: int
    created_at: str
    updated_at: str


class SessionPage(BaseModel):
    sessions: list[SessionSummary] = Field(description="The caller's own sessions, newest activity first")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page")


@app.get("/", response_model=SessionPage)
def list_sessions(
    caller: CurrentUser, limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=100_000)
) -> dict:
    from aiteacher.db import transaction
    from aiteacher.tutor.service import list_sessions

    with transaction(read_only=True) as session:
        return list_sessions(session, caller, limit, offset)


@app.get(
    "/{session_id}",
    response_model=ChatSessionOut,
    responses={404: {"description": "Missing, deleted, or another user's"}},
)
def read_session(session_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.tutor.service import session_view

    with transaction(read_only=True) as session:
        return session_view(session, caller, session_id)


@app.delete("/{session_id}", status_code=204, response_class=Response)
def delete_session(session_id: str, caller: CurrentUser) -> Response:
    from aiteacher.db import transaction
    from aiteacher.tutor.service import delete_session

    with transaction() as session:
        delete_session(session, caller, session_id)
    return Response(status_code=204)


handler = lambda_handler(app)
