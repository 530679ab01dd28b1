"""auth-login: exchange email and password for an access and a refresh token."""

from aiteacher.identity.schemas import LoginIn, TokenPair
from aiteacher.web import Db, client_ip, create_app, lambda_handler

app = create_app("auth-login", "Sign in")


@app.post(
    "/",
    response_model=TokenPair,
    responses={
        401: {"description": "Invalid credentials (same body for unknown email and wrong password)"},
        429: {"description": "Too many failed logins"},
    },
)
def login(body: LoginIn, db: Db) -> TokenPair:
    from aiteacher.identity import service

    pair = service.login(db, email=body.email, password=body.password, client_ip=client_ip())
    return TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_in=pair.refresh_expires_in,
    )


handler = lambda_handler(app)
