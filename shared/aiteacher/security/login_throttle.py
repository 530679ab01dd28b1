"""Login throttling without lockout: failures count per account *and address*, with a progressive delay.

Keyed on the account alone, ten wrong passwords from anywhere would lock the real user out, forever if
renewed. So the tight limit is per (account, address): after `LOGIN_FREE_FAILURES` failures from one
address, that address must wait 2, 4, 8 ... s (up to `LOGIN_MAX_DELAY_SECONDS`) between attempts on the
account, and after `LOGIN_MAX_FAILURES` it is refused for the rest of the window. Other addresses are
unaffected. Two wider ceilings stop distributed guessing: `LOGIN_MAX_FAILURES_PER_ACCOUNT` failures of
one account from all addresses, and `LOGIN_MAX_FAILURES_PER_IP` failures of one address over all
accounts (high, because a campus NAT puts thousands of students behind one address).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aiteacher import ratelimit
from aiteacher.audit import audit
from aiteacher.cache import get_redis, redis_errors
from aiteacher.config import get_settings
from aiteacher.errors import RateLimited


@dataclass(frozen=True)
class LoginAttempt:
    """The Redis keys of one (account, address) login attempt."""

    email: str
    pair: str
    account: str
    address: str
    delay: str

    @classmethod
    def of(cls, email: str, client_ip: str) -> LoginAttempt:
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        return cls(
            email,
            f"login-fail:pair:{account}:{client_ip}",
            f"login-fail:acct:{account}",
            f"login-fail:ip:{client_ip}",
            f"login-delay:{account}:{client_ip}",
        )

    def _windows(self) -> list[tuple[str, int]]:
        settings = get_settings()
        return [
            (self.pair, settings.login_max_failures),
            (self.account, settings.login_max_failures_per_account),
            (self.address, settings.login_max_failures_per_ip),
        ]

    def check(self) -> None:
        """Refuse (429) an attempt that comes too soon or over a limit, before the password is verified."""
        window = get_settings().login_failure_window_seconds
        with redis_errors("The login throttle"):
            wait_ms = int(get_redis().pttl(self.delay))
        if wait_ms > 0:
            audit("auth.login", "throttled", target=self.email, reason="delay")
            raise RateLimited(-(-wait_ms // 1000), "Too many failed logins from this address; wait before retrying")
        for (key, _), decision in zip(self._windows(), ratelimit.peek_many(self._windows(), window), strict=True):
            if not decision.allowed:
                audit(
                    "auth.login",
                    "throttled",
                    target=self.email if key != self.address else None,
                    reason=key.split(":")[1],
                )
                raise RateLimited(
                    decision.reset_seconds, "Too many failed logins; try again later", headers=decision.headers()
                )

    def failed(self) -> None:
        """Count a failure and set the delay the next attempt from this address must wait."""
        settings = get_settings()
        window = settings.login_failure_window_seconds
        decisions = [ratelimit.hit(key, limit, window) for key, limit in self._windows()]
        failures = decisions[0].limit - decisions[0].remaining
        over = failures - settings.login_free_failures
        if over > 0:
            delay = min(settings.login_max_delay_seconds, 2 ** min(over, 20))
            with redis_errors("The login throttle"):
                get_redis().set(self.delay, b"1", px=delay * 1000)

    def succeeded(self) -> None:
        """The right password from this address clears this address's failures (not the account's ceiling)."""
        with redis_errors("The login throttle"):
            get_redis().delete(f"rl:{self.pair}", self.delay)
