"""auth-logout: refuse this access token from now on and revoke its login's refresh tokens."""

from fastapi import Response

from aiteacher.identity.schemas import LogoutIn
from aiteacher.web import CurrentUser, Db, create_app, lambda_handler

app = create_app("auth-logout", "Sign out")


@app.post("/", status_code=204, response_class=Response)
def logout(caller: CurrentUser, db: Db, body: LogoutIn | None = None) -> Response:
    from aiteacher.identity import service

    service.logout(db, caller, body.refresh_token if body else None)
    return Response(status_code=204)


handler = lambda_handler(app)
