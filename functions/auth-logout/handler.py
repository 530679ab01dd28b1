"""auth-logout: refuse this access token from now on and revoke its login's refresh tokens."""

from fastapi import Response

from aiteacher.identity.schemas import LogoutIn
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("auth-logout", "Sign out")


@app.post("/", status_code=204, response_class=Response)
def logout(caller: CurrentUser, body: LogoutIn | None = None) -> Response:
    from aiteacher.db import transaction
    from aiteacher.identity import service

    with transaction() as session:
        service.logout(session, caller, body.refresh_token if body else None)
    return Response(status_code=204)


handler = lambda_handler(app)
