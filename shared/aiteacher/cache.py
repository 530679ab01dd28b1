"""Redis: the client getter, the token deny-list and small cache helpers.

Every Redis failure surfaces as `ServiceUnavailable` (503): authentication and rate limiting fail
closed, never open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aiteacher import registry
from aiteacher.errors import ServiceUnavailable

if TYPE_CHECKING:
    from redis import Redis

T = TypeVar("T")


@registry.client(close=lambda client: client.close())
def get_redis() -> Redis:
    from redis import Redis

    from aiteacher.config import get_settings

    settings = get_settings()
    if not settings.redis_url:
        raise ServiceUnavailable("REDIS_URL is not configured")
    timeout = settings.redis_timeout_seconds
    return Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                          health_check_interval=30, decode_responses=False)


@contextmanager
def redis_errors(what: str = "The cache") -> Iterator[None]:
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailable(f"{what} is unreachable; try again shortly") from exc


def _deny_key(issuer: str, jti: str) -> str:
    return f"deny:jti:{issuer}:{jti}"


def _family_key(family: str) -> str:
    return f"deny:fam:{family}"


def deny_token(issuer: str, jti: str, exp: int) -> None:
    ttl = max(1, exp - int(time.time()) + 5)
    with redis_errors("The token store"):
        get_redis().set(_deny_key(issuer, jti), b"1", ex=ttl)


def deny_family(family: str, ttl_seconds: int) -> None:
    """Refuse every access token of a login (family) until the longest of them has expired."""
    with redis_errors("The token store"):
        get_redis().set(_family_key(family), b"1", ex=max(1, ttl_seconds + 5))


def is_denied(issuer: str, jti: str, family: str | None) -> bool:
    keys = [_deny_key(issuer, jti)] + ([_family_key(family)] if family else [])
    with redis_errors("The token store"):
        return any(get_redis().mget(keys))


def cached_json(key: str, ttl_seconds: int, build: Callable[[], Any]) -> Any:
    """JSON value cached in Redis; a Redis outage only skips the cache."""
    import json

    from redis.exceptions import RedisError

    try:
        raw = get_redis().get(key)
        if raw is not None:
            return json.loads(raw)
    except (RedisError, ServiceUnavailable):
        return build()
    value = build()
    try:
        get_redis().set(key, json.dumps(value, separators=(",", ":")), ex=ttl_seconds)
    except RedisError:
        pass
    return value
