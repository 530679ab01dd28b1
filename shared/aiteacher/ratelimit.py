"""Exact sliding-window rate limiting in Redis: one sorted set per key, one Lua call per check.

The script trims entries older than the window, counts the rest and, when under the limit, records
this request; the Redis server's clock is the only clock, so replicas of a function agree.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from aiteacher import registry
from aiteacher.cache import get_redis, redis_errors
from aiteacher.errors import RateLimited

# KEYS[1] the window's sorted set. ARGV: limit, window (ms), member, record (1 = count this hit)
_SLIDING_WINDOW = """
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
return {allowed, count, reset_ms}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    window_seconds: int

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


def hit(key: str, limit: int, window_seconds: int, *, record: bool = True) -> Decision:
    """Check `key` against `limit` per `window_seconds`; with record=True an allowed hit is counted."""
    with redis_errors("The rate limiter"):
        allowed, count, reset_ms = _script()(
            keys=[f"rl:{key}"], args=[limit, window_seconds * 1000, secrets.token_hex(8), "1" if record else "0"]
        )
    reset_seconds = max(1, -(-int(reset_ms) // 1000))
    return Decision(bool(allowed), limit, max(0, limit - int(count)), reset_seconds, window_seconds)


def peek(key: str, limit: int, window_seconds: int) -> Decision:
    return hit(key, limit, window_seconds, record=False)


def enforce(key: str, limit: int, window_seconds: int) -> Decision:
    decision = hit(key, limit, window_seconds)
    if not decision.allowed:
        raise RateLimited(decision.reset_seconds, headers=decision.headers())
    return decision


def reset(key: str) -> None:
    with redis_errors("The rate limiter"):
        get_redis().delete(f"rl:{key}")
