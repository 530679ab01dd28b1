"""auth-refresh: rotate a refresh token. A token presented twice revokes every token of its login."""

from aiteacher.errors import InvalidToken
from aiteacher.identity.schemas import RefreshIn, TokenPair
from aiteacher.web import Db, create_app, lambda_handler

app = create_app("auth-refresh", "Rotate a refresh token")


@app.post("/", response_model=TokenPair, responses={401: {"description": "Invalid, expired, revoked or reused"}})
def refresh(body: RefreshIn, db: Db) -> TokenPair:
    from aiteacher.identity import service

    pair = service.refresh(db, body.refresh_token)
    if pair is None:  # reuse: commit the revocation (the 401 below would roll it back), then refuse
        db.commit()
        raise InvalidToken(
            "The refresh token was already used; every session of this login is revoked", code="token_reused"
        )
    return TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_in=pair.refresh_expires_in,
    )


handler = lambda_handler(app)
