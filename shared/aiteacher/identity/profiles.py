"""The caller's profile (role and placement), cached in Redis.

`aiteacher.web.admit` reads the cached copy in the same Redis round trip as the rate limit and the
deny-list check, so `GET /me` and the tenant scope of search, chat and exams usually need no database
read. Every change to a profile forgets the cached copy after its transaction commits; the TTL
(`PROFILE_CACHE_SECONDS`) bounds what a change made outside the API can leave stale.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiteacher.errors import InvalidToken, NotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from aiteacher.security.tokens import Claims

prefetched: ContextVar[dict[str, Any] | None] = ContextVar("prefetched_profile", default=None)


def cache_key(user_id: str) -> str:
    return f"profile:{user_id}"


def accept_prefetched(user_id: str, raw: bytes | None) -> None:
    """Called by `admit` with what Redis returned for `cache_key(user_id)` (or None)."""
    from aiteacher.cache import decode

    profile = decode(raw)
    prefetched.set(profile if isinstance(profile, dict) and profile.get("id") == user_id else None)


def current(user_id: str, session: Session | None = None) -> dict[str, Any]:
    """The profile: the copy `admit` fetched, else the database (then cached for the next request)."""
    cached = prefetched.get()
    if cached is not None and cached.get("id") == user_id:
        return cached
    if session is None:
        from aiteacher.db import transaction

        try:
            with transaction(read_only=True) as own_session:
                profile = _read(own_session, user_id)
        except NotFound:
            # A read replica may not have replayed a brand-new account yet: the primary has the last word.
            with transaction() as own_session:
                profile = _read(own_session, user_id)
    else:
        profile = _read(session, user_id)
    _remember(profile)
    return profile


async def admit_token(claims: Claims) -> None:
    """Refuse an access token issued before the account's last role change or deactivation.

    The profile `admit` prefetched (same Redis round trip as the rate limit) answers at no cost; on a
    miss (expired, forgotten after a change, or Redis lost its data) the database answers once and the
    profile is cached again, so the check survives the loss of Redis' deny-list."""
    profile = prefetched.get()
    if profile is None or profile.get("id") != claims.sub:
        from starlette.concurrency import run_in_threadpool

        try:
            profile = await run_in_threadpool(current, claims.sub)
        except NotFound as exc:
            raise InvalidToken("This account is deactivated", code="account_disabled") from exc
        prefetched.set(profile)
    if claims.ver < int(profile.get("token_version") or 0):
        raise InvalidToken(
            "The account's role or status changed since this token was issued; sign in again", code="token_revoked"
        )


def _read(session: Session, user_id: str) -> dict[str, Any]:
    from aiteacher.identity.repository import profile_row

    row = profile_row(session, user_id)
    if row is None:
        raise NotFound("The account no longer exists")
    return {
        "id": row.id,
        "email": row.email,
        "full_name": row.full_name,
        "role": row.role,
        "faculty_id": row.faculty_id,
        "department_id": row.department_id,
        "semester_id": row.semester_id,
        "push_enabled": bool(row.push_token),
        "token_version": int(row.token_version or 0),
    }


def _remember(profile: dict[str, Any]) -> None:
    from aiteacher.cache import set_json
    from aiteacher.config import get_settings

    set_json(cache_key(profile["id"]), profile, get_settings().profile_cache_seconds)


def forget(*user_ids: str) -> None:
    from aiteacher import cache

    cache.forget(*(cache_key(user_id) for user_id in user_ids))


def forget_after_commit(session: Session, *user_ids: str) -> None:
    from aiteacher.db import after_commit

    after_commit(session, lambda: forget(*user_ids))
