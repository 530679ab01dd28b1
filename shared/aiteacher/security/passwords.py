"""argon2id through passlib (the maintained `libpass` distribution).

Parameters meet OWASP's minimum (m=19 MiB, t=2, p=1). Passwords are 8-128 characters and are never
truncated. `dummy_verify` spends the same time as a real verify, so an unknown email and a wrong
password cannot be told apart by timing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
MIN_LENGTH = 8
MAX_LENGTH = 128


@lru_cache(maxsize=1)
def _context() -> Any:
    from passlib.context import CryptContext

    return CryptContext(
        schemes=["argon2"],
        argon2__type="ID",
        argon2__memory_cost=MEMORY_COST_KIB,
        argon2__time_cost=TIME_COST,
        argon2__parallelism=PARALLELISM,
    )


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _context().hash("dummy password for timing equalisation")


def hash_password(password: str) -> str:
    return _context().hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """(valid, new hash if the stored one uses outdated parameters)."""
    return _context().verify_and_update(password, password_hash)


def dummy_verify(password: str) -> None:
    _context().verify(password, _dummy_hash())


def warm_up() -> None:
    """Build the context and the dummy hash ahead of the first login."""
    _dummy_hash()
