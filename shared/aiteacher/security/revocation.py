"""Revocations that survive Redis losing its data.

The deny-list lives in Redis (one round trip per request, see `ratelimit`), but the database is its
source of truth: a logged-out access token is a `revoked_tokens` row until it expires, and a revoked
login is a `refresh_families` row with `revoked_at`. A sentinel key marks a Redis whose deny-list has been
loaded. Every new Redis connection (and after a restart every connection is new) checks the sentinel
first; when it is missing (Redis restarted empty, or a fresh Redis), the deny-list is rebuilt from the
database before the connection serves any command. If the database is away at that moment the
connection fails and the request gets a 503: revocation fails closed, never open.

Redis AOF (compose, manifests) keeps the keys across restarts as well; this check covers a Redis that
lost them anyway (no persistence, a replaced pod, a flushed instance).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("aiteacher.revocation")
SENTINEL = "deny:loaded"


def persist_token_revocation(session: Any, issuer: str, jti: str, exp: int) -> None:
    """Record a logged-out access token in the caller's transaction (the Redis key is set as well)."""
    from aiteacher.db.models import RevokedToken

    session.merge(RevokedToken(issuer=issuer, jti=jti, expires_at=datetime.fromtimestamp(exp + 5, UTC)))


def deny_list_entries() -> list[tuple[str, int]]:
    """(deny key, seconds to live) for every revocation still in force, read from the primary database."""
    from sqlalchemy import select

    from aiteacher.cache import deny_keys
    from aiteacher.config import get_settings
    from aiteacher.db import transaction
    from aiteacher.db.models import RefreshFamily, RevokedToken

    now = datetime.now(UTC)
    family_ttl = get_settings().access_token_ttl_seconds + 5
    entries: list[tuple[str, int]] = []
    with transaction() as session:
        for issuer, jti, expires_at in session.execute(
            select(RevokedToken.issuer, RevokedToken.jti, RevokedToken.expires_at).where(RevokedToken.expires_at > now)
        ):
            entries.append((deny_keys(issuer, jti, None)[0], max(1, int((expires_at - now).total_seconds()))))
        for family_id, revoked_at in session.execute(
            select(RefreshFamily.id, RefreshFamily.revoked_at).where(
                RefreshFamily.revoked_at > now - timedelta(seconds=family_ttl)
            )
        ):
            if revoked_at is None:  # the filter excludes it; the column is nullable
                continue
            remaining = int((revoked_at + timedelta(seconds=family_ttl) - now).total_seconds())
            entries.append((f"deny:fam:{family_id}", max(1, remaining)))
    return entries


def _commands() -> list[tuple[Any, ...]]:
    try:
        entries = deny_list_entries()
    except Exception as exc:  # the database is away: this connection must not serve unchecked tokens
        if _schema_missing(exc):  # not migrated yet: no revocation can exist
            return [("SET", SENTINEL, str(int(time.time())))]
        from redis.exceptions import ConnectionError as RedisConnectionError

        raise RedisConnectionError(f"the deny-list cannot be rebuilt (database unavailable: {exc})") from exc
    log.warning("Redis came back without its deny-list: restoring %d revocation(s) from the database", len(entries))
    return [("SET", key, b"1", "EX", ttl) for key, ttl in entries] + [("SET", SENTINEL, str(int(time.time())))]


def _schema_missing(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__}".lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def ensure_loaded(connection: Any) -> None:
    """`redis_connect_func` of the sync pools: the usual handshake, then the sentinel check."""
    connection.on_connect()
    connection.send_command("EXISTS", SENTINEL)
    if int(connection.read_response()) == 1:
        return
    commands = _commands()
    connection.send_packed_command(connection.pack_commands(commands))
    for _ in commands:
        connection.read_response()


async def ensure_loaded_async(connection: Any) -> None:
    """The same for asyncio pools (the rebuild reads the database once, in a thread)."""
    import asyncio

    await connection.on_connect()
    await connection.send_command("EXISTS", SENTINEL)
    if int(await connection.read_response()) == 1:
        return
    commands = await asyncio.to_thread(_commands)
    await connection.send_packed_command(connection.pack_commands(commands))
    for _ in commands:
        await connection.read_response()


def purge_expired() -> int:
    """Rows of tokens that have expired anyway (the reconciler calls this)."""
    from sqlalchemy import delete

    from aiteacher.db import rows_affected, transaction
    from aiteacher.db.models import RevokedToken

    with transaction() as session:
        return rows_affected(session, delete(RevokedToken).where(RevokedToken.expires_at < datetime.now(UTC)))
