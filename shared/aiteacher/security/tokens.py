"""JWT access and refresh tokens (PyJWT).

Every token carries typ, iss, aud, exp, iat, jti, sub and role, all required on decode. The algorithm
is taken from settings and is the only one accepted (HS256 by default; EdDSA or RS256 with key
files), so `alg: none` and algorithm confusion are refused by PyJWT.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from aiteacher.enums import Role
from aiteacher.errors import InvalidToken

TokenType = Literal["access", "refresh"]
ROLES = frozenset(str(role) for role in Role)
REQUIRED_CLAIMS = ["typ", "iss", "aud", "exp", "iat", "jti", "sub", "role"]


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str
    jti: str
    exp: int
    iat: int
    typ: str
    fam: str | None
    iss: str
    ver: int = 0  # the account's token version when issued (a role change or deactivation raises it)


@lru_cache(maxsize=4)
def _keys(algorithm: str, secret: str, private_file: str | None, public_file: str | None) -> tuple[Any, Any]:
    if algorithm == "HS256":
        return secret, secret
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(Path(private_file or "").read_bytes(), password=None)
    public = serialization.load_pem_public_key(Path(public_file or "").read_bytes())
    return private, public


def _settings_keys() -> tuple[Any, Any, str]:
    from aiteacher.config import get_settings

    s = get_settings()
    secret = s.jwt_signing_secret() if s.jwt_algorithm == "HS256" else ""
    signing, verifying = _keys(
        s.jwt_algorithm, secret, str(s.jwt_private_key_file or ""), str(s.jwt_public_key_file or "")
    )
    return signing, verifying, s.jwt_algorithm


def new_jti() -> str:
    return secrets.token_urlsafe(18)


def issue(
    token_type: TokenType,
    *,
    sub: str,
    role: str,
    family: str,
    ttl_seconds: int,
    jti: str | None = None,
    expires_at: int | None = None,
    version: int = 0,
) -> tuple[str, Claims]:
    import jwt

    from aiteacher.config import get_settings

    settings = get_settings()
    signing, _, algorithm = _settings_keys()
    now = int(time.time())
    exp = min(now + ttl_seconds, expires_at) if expires_at else now + ttl_seconds
    token_id = jti or new_jti()
    claims = {
        "typ": token_type,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "role": role,
        "iat": now,
        "exp": exp,
        "jti": token_id,
        "fam": family,
        "ver": version,
    }
    token = jwt.encode(claims, signing, algorithm=algorithm)
    return token, Claims(
        sub=sub,
        role=role,
        jti=token_id,
        exp=exp,
        iat=now,
        typ=token_type,
        fam=family,
        iss=settings.jwt_issuer,
        ver=version,
    )


def decode(token: str, expected_type: TokenType) -> Claims:
    import jwt

    from aiteacher.config import get_settings

    settings = get_settings()
    _, verifying, algorithm = _settings_keys()
    try:
        payload = jwt.decode(
            token,
            verifying,
            algorithms=[algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("The token has expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("The token is invalid") from exc
    if payload.get("typ") != expected_type:
        raise InvalidToken(f"An {expected_type} token is required")
    if payload.get("role") not in ROLES:
        raise InvalidToken("The token is invalid")
    version = payload.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**31:
        raise InvalidToken("The token is invalid")
    return Claims(
        sub=str(payload["sub"]),
        role=payload["role"],
        jti=str(payload["jti"]),
        exp=int(payload["exp"]),
        iat=int(payload["iat"]),
        typ=payload["typ"],
        fam=payload.get("fam"),
        iss=payload["iss"],
        ver=version,
    )
