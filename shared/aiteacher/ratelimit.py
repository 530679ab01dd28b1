"""Exact sliding-window rate limiting in Redis: one sorted set per key, one Lua call per check.

The script trims entries older than the window, counts the rest and, when under the limit, records
this request; the Redis server's clock is the only clock, so replicas of a function agree.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from aiteacher import registry
from aiteacher.cache import get_redis, redis_errors
from aiteacher.errors import ServiceUnavailable

# KEYS[1] the window's sorted set; KEYS[2 .. 1+ARGV[5]] deny-list keys (any present: the caller's token
# is revoked, nothing is counted); an optional last key is read and returned with the decision (the
# caller's cached profile), so one round trip serves the whole admission of a request.
# ARGV: limit, window (ms), member, record (1 = count this hit), number of deny keys.
_SLIDING_WINDOW = """
local deny = tonumber(ARGV[5] or '0')
for i = 2, 1 + deny do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {-1, 0, 0} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    count = count + 1
  end
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset_ms = window
if oldest[2] then reset_ms = tonumber(oldest[2]) + window - now end
if #KEYS > 1 + deny then
  return {allowed, count, reset_ms, redis.call('GET', KEYS[#KEYS])}
end
return {allowed, count, reset_ms}
"""

_SCRIPT_SHA = hashlib.sha1(_SLIDING_WINDOW.encode(), usedforsecurity=False).hexdigest()
_members = itertools.count()


def _member() -> str:
    """A unique sorted-set member for this hit (the score is the server's clock)."""
    return f"{time.time_ns()}-{os.getpid()}-{next(_members)}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    window_seconds: int
    revoked: bool = False
    fetched: bytes | None = None

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


@registry.client()
def _script() -> Any:
    return get_redis().register_script(_SLIDING_WINDOW)


def _decision(raw: list[Any], limit: int, window_seconds: int) -> Decision:
    allowed, count, reset_ms = (int(value) for value in raw[:3])
    if allowed == -1:
        return Decision(False, limit, 0, 0, window_seconds, revoked=True)
    fetched = raw[3] if len(raw) > 3 and raw[3] else None
    return Decision(
        bool(allowed), limit, max(0, limit - count), max(1, -(-reset_ms // 1000)), window_seconds, fetched=fetched
    )


def hit(key: str, limit: int, window_seconds: int, *, record: bool = True, deny_keys: tuple[str, ...] = ()) -> Decision:
    """Check `key` against `limit` per `window_seconds`; with record=True an allowed hit is counted.
    With `deny_keys`, the same round trip first checks the token deny-list (`Decision.revoked`)."""
    with redis_errors("The rate limiter"):
        raw = _script()(
            keys=[f"rl:{key}", *deny_keys],
            args=[limit, window_seconds * 1000, _member(), "1" if record else "0", len(deny_keys)],
        )
    return _decision(raw, limit, window_seconds)


async def hit_async(
    key: str, limit: int, window_seconds: int, *, deny_keys: tuple[str, ...] = (), fetch_key: str | None = None
) -> Decision:
    """`hit` on the event loop's asyncio client: no thread hop on the request path. `fetch_key` is read in
    the same round trip (`Decision.fetched`)."""
    from redis.exceptions import RedisError

    from aiteacher.cache import get_async_redis

    client = get_async_redis()
    keys = [f"rl:{key}", *deny_keys, *([fetch_key] if fetch_key else [])]
    args: list[str | int] = [limit, window_seconds * 1000, _member(), "1", len(deny_keys)]
    try:
        try:
            raw = await client.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            raw = await client.eval(_SLIDING_WINDOW, len(keys), *keys, *args)
    except RedisError as exc:
        raise ServiceUnavailable("The rate limiter is unreachable; try again shortly") from exc
    return _decision(raw, limit, window_seconds)


def peek_many(windows: list[tuple[str, int]], window_seconds: int) -> list[Decision]:
    """Several (key, limit) windows in one round trip, counting nothing."""
    script = _script()
    with redis_errors("The rate limiter"):
        pipe = get_redis().pipeline(transaction=False)
        for key, limit in windows:
            script(keys=[f"rl:{key}"], args=[limit, window_seconds * 1000, "-", "0", 0], client=pipe)
        raws = pipe.execute()
    return [_decision(raw, limit, window_seconds) for raw, (_, limit) in zip(raws, windows, strict=True)]


def reset(key: str) -> None:
    with redis_errors("The rate limiter"):
        get_redis().delete(f"rl:{key}")
