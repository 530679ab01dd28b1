"""chat-session: the caller's own tutoring session (history and learning state); DELETE hides it."""

from fastapi import Response

from aiteacher.replies import ChatSessionOut
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("chat-session", "Read or delete a tutoring session")


@app.get("/{session_id}", response_model=ChatSessionOut,
          responses={404: {"description": "Missing, deleted, or another user's"}})
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
