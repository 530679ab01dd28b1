"""Redis: the clients (sync, and asyncio per event loop), the best-effort JSON cache and the token deny-list.

Every Redis failure surfaces as `ServiceUnavailable` (503): authentication and rate limiting fail
closed, never open. Pools are blocking and sized from FUNCTION_CONCURRENCY: past the cap a request waits
(up to REDIS_TIMEOUT_SECONDS) for a free connection instead of failing. A connection that went stale in a
Redis restart is retried once on a fresh one (our commands are idempotent reads, SETs and a rate-limit
script whose member is unique per hit), so a restart costs no request a 503.

The best-effort cache (`cached_json`, `get_json`, `set_json`, `forget` and their `_async` twins) is the
opposite: a cache that is away, slow or holds a value of an older shape is a miss, logged, never an error.
Values round-trip through pydantic when a type is given (`cached_json(key, ttl, compute, list[SearchHit])`).
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from aiteacher import registry
from aiteacher.errors import ServiceUnavailable

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop

    from pydantic import TypeAdapter
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

T = TypeVar("T")
log = logging.getLogger("aiteacher.cache")


@registry.client(close=lambda client: client.close())
def get_redis() -> Redis:
    from redis import BlockingConnectionPool, Redis

    url, options = _redis_options()
    # With a pool given, redis-py takes the retry policy from the pool's connection options.
    from aiteacher.security.revocation import ensure_loaded

    pool = BlockingConnectionPool.from_url(url, **options, **_retry_options(), redis_connect_func=ensure_loaded)
    return Redis(connection_pool=pool)


def _retry_options(asyncio: bool = False) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    retry: Any
    if asyncio:
        from redis.asyncio.retry import Retry as AsyncRetry

        retry = AsyncRetry(NoBackoff(), 1)
    else:
        from redis.retry import Retry

        retry = Retry(NoBackoff(), 1)
    return {"retry": retry, "retry_on_error": [RedisConnectionError, RedisTimeoutError]}


def _redis_options() -> tuple[str, dict[str, Any]]:
    from aiteacher.config import get_settings

    settings = get_settings()
    if not settings.redis_url:
        raise ServiceUnavailable("REDIS_URL is not configured")
    timeout = settings.redis_timeout_seconds
    return settings.redis_url, {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "decode_responses": False,
        "max_connections": settings.redis_pool_size,
        "timeout": timeout,
        "driver_info": driver_info(),
    }


@lru_cache(maxsize=1)
def driver_info() -> Any:
    """The client name and version every connection announces (CLIENT SETINFO), from the imported package.
    Left to redis-py, each new connection reads the package's metadata from disk (`importlib.metadata`,
    ~0.3-0.9 ms of CPU): a burst of requests opens a pool's connections exactly when the CPU is scarcest."""
    import redis
    from redis.driver_info import DriverInfo

    return DriverInfo(lib_version=redis.__version__)


_async_clients: weakref.WeakKeyDictionary[AbstractEventLoop, tuple[int, AsyncRedis]] = weakref.WeakKeyDictionary()
_async_generation = [0]


def get_async_redis() -> AsyncRedis:
    """An asyncio Redis client for the running event loop (the request hot path uses it, so a rate
    limit and deny-list check costs no thread hop). One per loop: asyncio connections cannot cross loops."""
    import asyncio

    from redis.asyncio import BlockingConnectionPool

    loop = asyncio.get_running_loop()
    entry = _async_clients.get(loop)
    if entry is None or entry[0] != _async_generation[0]:
        from aiteacher.config import get_settings

        url, options = _redis_options()
        # A timeout on the event loop fires by the wall clock: when the loop of a busy replica resumes a request
        # late, the reply has long been there. REDIS_TIMEOUT_SECONDS (1 s) then turned CPU saturation into 503s.
        timeout = max(get_settings().redis_async_timeout_seconds, options["socket_timeout"])
        options = {**options, "socket_timeout": timeout, "socket_connect_timeout": timeout, "timeout": timeout}
        from aiteacher.security.revocation import ensure_loaded_async

        pool = BlockingConnectionPool.from_url(
            url, **options, **_retry_options(asyncio=True), redis_connect_func=ensure_loaded_async
        )
        entry = (_async_generation[0], _gated_redis_class()(connection_pool=pool))
        _async_clients[loop] = entry
    return entry[1]


@lru_cache(maxsize=1)
def _gated_redis_class() -> type[AsyncRedis]:
    from redis.asyncio import Redis as AsyncRedis

    class GatedRedis(AsyncRedis):
        """A command that takes longer than a round trip waits off the replica's slot (`aiteacher.scheduling`):
        a Redis that is slow or away delays its own requests, not every request of the replica."""

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            from aiteacher.scheduling import SHORT_WAIT, off_cpu

            async with off_cpu(SHORT_WAIT):
                return await super().execute_command(*args, **options)

    return GatedRedis


@registry.on_reset
def forget_async_clients() -> None:
    """Settings changed (tests, `registry.reset()`): build new asyncio clients on next use."""
    _async_generation[0] += 1


@contextmanager
def redis_errors(what: str = "The cache") -> Iterator[None]:
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailable(f"{what} is unreachable; try again shortly") from exc


# --- the best-effort JSON cache ------------------------------------------------------------------------


def _unavailable() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, ServiceUnavailable)


@lru_cache(maxsize=64)
def _adapter(kind: Any) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def decode(raw: bytes | str | None, kind: Any = None) -> Any:
    """A cached value, or None (absent, not JSON, or not of `kind` any more: an older release's shape)."""
    if not raw:
        return None
    from pydantic import ValidationError

    try:
        return json.loads(raw) if kind is None else _adapter(kind).validate_json(raw)
    except (ValueError, ValidationError):
        log.info("cached value of another shape ignored")
        return None


def encode(value: Any, kind: Any = None) -> bytes:
    if kind is None:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return _adapter(kind).dump_json(value)


def get_json(key: str, kind: Any = None) -> Any:
    """The cached value under `key` (None: a miss, or the cache is away)."""
    try:
        raw = get_redis().get(key)
    except _unavailable() as exc:
        log.warning("cache read of %s failed: %s", key.split(":", 1)[0], exc)
        return None
    return decode(raw, kind)


def get_many_json(keys: list[str], kind: Any = None) -> list[Any]:
    """The cached values under `keys`, in order (one round trip; None for each miss)."""
    if not keys:
        return []
    try:
        values = get_redis().mget(keys)
    except _unavailable() as exc:
        log.warning("cache read of %s failed: %s", keys[0].split(":", 1)[0], exc)
        return [None] * len(keys)
    return [decode(raw, kind) for raw in values]


def set_json(key: str, value: Any, ttl: int, kind: Any = None) -> None:
    """Cache `value` for `ttl` seconds (nothing when ttl <= 0 or the cache is away)."""
    if ttl <= 0:
        return
    try:
        get_redis().set(key, encode(value, kind), ex=ttl)
    except _unavailable() as exc:
        log.warning("cache write of %s failed: %s", key.split(":", 1)[0], exc)


def forget(*keys: str) -> None:
    """Drop cached values (best effort: their TTL bounds what a failed delete leaves)."""
    if not keys:
        return
    try:
        get_redis().delete(*keys)
    except _unavailable() as exc:
        log.warning("cache delete of %s failed: %s", keys[0].split(":", 1)[0], exc)


def cached_json(key: str | Callable[[], str], ttl: int, compute: Callable[[], T], kind: Any = None) -> tuple[T, bool]:
    """(value, served from the cache?): the cached value under `key`, else `compute()`, cached for `ttl`
    seconds. `key` may be a function (its Redis reads fail like the cache's). ttl <= 0: no cache at all.
    When the cache is away, the value is computed and nothing is written."""
    if ttl <= 0:
        return compute(), False
    try:
        name = key() if callable(key) else key
        raw = get_redis().get(name)
    except _unavailable() as exc:
        log.warning("cache read failed: %s", exc)
        return compute(), False
    cached = decode(raw, kind)
    if cached is not None:
        return cached, True
    value = compute()
    set_json(name, value, ttl, kind)
    return value, False


async def cached_json_async(
    key: str | Callable[[], Awaitable[str]], ttl: int, compute: Callable[[], Awaitable[T]], kind: Any = None
) -> tuple[T, bool]:
    """`cached_json` on the event loop's asyncio client: a hit costs no thread hop (the tutor's turns wait
    for a worker thread's GIL otherwise); `compute` is awaited only on a miss (e.g. on an executor)."""
    if ttl <= 0:
        return await compute(), False
    try:
        name = await key() if callable(key) else key
        raw = await get_async_redis().get(name)
    except _unavailable() as exc:
        log.warning("cache read failed: %s", exc)
        return await compute(), False
    cached = decode(raw, kind)
    if cached is not None:
        return cached, True
    value = await compute()
    await set_json_async(name, value, ttl, kind)
    return value, False


async def get_json_async(key: str, kind: Any = None) -> Any:
    """`get_json` on the event loop's asyncio client."""
    try:
        raw = await get_async_redis().get(key)
    except _unavailable() as exc:
        log.warning("cache read of %s failed: %s", key.split(":", 1)[0], exc)
        return None
    return decode(raw, kind)


async def set_json_async(key: str, value: Any, ttl: int, kind: Any = None) -> None:
    """`set_json` on the event loop's asyncio client."""
    if ttl <= 0:
        return
    try:
        await get_async_redis().set(key, encode(value, kind), ex=ttl)
    except _unavailable() as exc:
        log.warning("cache write of %s failed: %s", key.split(":", 1)[0], exc)


# --- the token deny-list ------------------------------------------------------------------------------


def deny_keys(issuer: str, jti: str, family: str | None) -> tuple[str, ...]:
    """The deny-list keys that refuse an access token: its own (iss, jti) and its login's family."""
    return (f"deny:jti:{issuer}:{jti}",) + ((f"deny:fam:{family}",) if family else ())


def deny_token(issuer: str, jti: str, exp: int) -> None:
    ttl = max(1, exp - int(time.time()) + 5)
    with redis_errors("The token store"):
        get_redis().set(deny_keys(issuer, jti, None)[0], b"1", ex=ttl)


def deny_family(family: str, ttl_seconds: int) -> None:
    """Refuse every access token of a login (family) until the longest of them has expired."""
    with redis_errors("The token store"):
        get_redis().set(f"deny:fam:{family}", b"1", ex=max(1, ttl_seconds + 5))
