"""The account port: what the platform asks about a signed-in caller's account, without importing the
domain that owns accounts (`identity`).

- `web.admit` prefetches the caller's profile in the rate-limit round trip (`cache_key`, then
  `accept_prefetched` with what Redis returned);
- `web.optional_user` refuses a token older than the account's last role change or deactivation
  (`admit_token`);
- the access policy reads the stored role and placement (`current`).

The provider is wired by packaging, not by an import: the `aiteacher.accounts` entry point of the
`aiteacher` distribution names it (shared/pyproject.toml: `identity = "aiteacher.identity.profiles"`, a
module whose functions are the port). `use(provider)` replaces it (tests, another deployment). Without a
provider, every authenticated request fails closed (503), never open.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from aiteacher.errors import ServiceUnavailable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from aiteacher.security.tokens import Claims

ENTRY_POINT_GROUP = "aiteacher.accounts"
DISTRIBUTION = "aiteacher"


class AccountProvider(Protocol):
    def cache_key(self, user_id: str) -> str:
        """The Redis key of the account's cached profile (read with the rate limit)."""
        ...

    def accept_prefetched(self, user_id: str, raw: bytes | None) -> None:
        """What Redis returned for `cache_key(user_id)` (None: a miss), for this request."""
        ...

    def current(self, user_id: str, session: Session | None = None) -> dict[str, Any]:
        """The account's profile: `id`, `role`, `faculty_id`, `department_id`, `semester_id`..."""
        ...

    async def admit_token(self, claims: Claims) -> None:
        """Raise `InvalidToken` for a token the account no longer honours."""
        ...


_lock = threading.Lock()
_provider: list[AccountProvider] = []


def use(provider: AccountProvider | None) -> None:
    """Install `provider` (None: forget it; the entry point is read again on next use)."""
    with _lock:
        _provider.clear()
        if provider is not None:
            _provider.append(provider)


def provider() -> AccountProvider:
    """The installed provider (the entry point's, loaded once per process)."""
    if _provider:
        return _provider[0]
    with _lock:
        if not _provider:
            _provider.append(_from_entry_point())
        return _provider[0]


def _from_entry_point() -> Any:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        # Our own distribution's metadata only (one lookup), not every installed package's.
        found = [entry for entry in distribution(DISTRIBUTION).entry_points if entry.group == ENTRY_POINT_GROUP]
    except PackageNotFoundError:
        found = []
    if len(found) != 1:
        raise ServiceUnavailable(
            f"No account provider: the '{DISTRIBUTION}' distribution declares {len(found)} "
            f"'{ENTRY_POINT_GROUP}' entry points (reinstall the package: `make install`)"
        )
    return found[0].load()
