"""argon2id through passlib (the maintained `libpass` distribution), and the rules a new password meets.

Parameters meet OWASP's minimum (m=19 MiB, t=2, p=1). Passwords are 8-128 characters and are never
truncated. `dummy_verify` spends the same time as a real verify, so an unknown email and a wrong
password cannot be told apart by timing.

New passwords follow NIST SP 800-63B 3.1.1.2: no composition rules, but a password that is blank
(whitespace only) or found in a list of commonly used and breached passwords is refused. The list
(`data/common-passwords.txt.gz`, about 198k entries of 8+ characters, case-folded, sorted) merges the
SecLists common-credentials lists and the zxcvbn / zxcvbn-ts password dictionaries (all MIT, see
`data/NOTICE-common-passwords.txt`). It is searched in place, by bisection over the sorted bytes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
MIN_LENGTH = 8
MAX_LENGTH = 128
COMMON_PASSWORDS = Path(__file__).with_name("data") / "common-passwords.txt.gz"


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


# --- the rules a new password meets ---------------------------------------------------------------


@lru_cache(maxsize=1)
def _common_passwords() -> bytes:
    import gzip

    return gzip.decompress(COMMON_PASSWORDS.read_bytes())


def is_common(password: str) -> bool:
    """Whether the case-folded password is in the common-password list (bisection over sorted lines)."""
    needle = password.casefold().encode()
    blob = _common_passwords()
    low, high = 0, len(blob)
    while low < high:
        middle = (low + high) // 2
        start = blob.rfind(b"\n", 0, middle) + 1
        end = blob.find(b"\n", start)
        line = blob[start:end]
        if line == needle:
            return True
        if line < needle:
            low = end + 1
        else:
            high = start
    return False


def check_new_password(password: str) -> None:
    """Refuse (422) a blank or common password; the message says why, never echoes the password."""
    from aiteacher.errors import ValidationFailed

    if not password.strip():
        raise ValidationFailed("The password must not be only spaces", code="password_blank")
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationFailed(f"The password must be {MIN_LENGTH}-{MAX_LENGTH} characters", code="password_length")
    if is_common(password):
        raise ValidationFailed(
            "This password is too common (it appears in lists of breached passwords); "
            "choose another, e.g. a few unrelated words",
            code="password_too_common",
        )
