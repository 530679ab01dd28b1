"""chat-session: the caller's own tutoring sessions: the list (newest first), one session's history and
learning state; DELETE hides it."""

from fastapi import Query, Response

from aiteacher.tutor.schemas import ChatSessionOut, SessionPage
from aiteacher.web import CurrentUser, Db, ReadDb, create_app, lambda_handler

app = create_app("chat-session", "List, read or delete your tutoring sessions")


@app.get("/", response_model=SessionPage)
def list_sessions(
    caller: CurrentUser,
    db: ReadDb,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=100_000),
) -> SessionPage:
    from aiteacher.tutor.service import list_sessions

    return SessionPage.model_validate(list_sessions(db, caller, limit, offset))


@app.get(
    "/{session_id}",
    response_model=ChatSessionOut,
    responses={404: {"description": "Missing, deleted, or another user's"}},
)
def read_session(session_id: str, caller: CurrentUser, db: ReadDb) -> ChatSessionOut:
    from aiteacher.tutor.service import session_view

    return ChatSessionOut.model_validate(session_view(db, caller, session_id))


@app.delete("/{session_id}", status_code=204, response_class=Response)
def delete_session(session_id: str, caller: CurrentUser, db: Db) -> Response:
    from aiteacher.tutor.service import delete_session

    delete_session(db, caller, session_id)
    return Response(status_code=204)


handler = lambda_handler(app)
