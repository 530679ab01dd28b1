"""Process-wide cached clients: each heavy client is built once per process by a getter decorated
with `@client`, and `reset()` (tests, the dev server) closes and forgets all of them. Modules that keep other
per-process state register an `on_reset` hook instead of being imported here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.RLock()  # a builder may call another getter
_instances: dict[str, Any] = {}
_closers: dict[str, Callable[[Any], None]] = {}
_reset_hooks: list[Callable[[], None]] = []


def client(close: Callable[[Any], None] | None = None) -> Callable[[Callable[[], T]], Callable[[], T]]:
    """Decorate a zero-argument builder so it runs once per process (thread-safe)."""

    def decorate(build: Callable[[], T]) -> Callable[[], T]:
        key = f"{build.__module__}.{build.__qualname__}"
        if close is not None:
            _closers[key] = close

        @wraps(build)
        def getter() -> T:
            try:
                return _instances[key]
            except KeyError:
                pass
            with _lock:
                if key not in _instances:
                    _instances[key] = build()
                return _instances[key]

        return getter

    return decorate


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Run `hook` at every `reset()`, before the clients close (e.g. `cache` forgets its asyncio clients).
    The registry imports no module that registers here, so platform modules can depend on it freely."""
    with _lock:
        if hook not in _reset_hooks:
            _reset_hooks.append(hook)
    return hook


def reset() -> None:
    for hook in list(_reset_hooks):
        hook()
    with _lock:
        instances = dict(_instances)
        _instances.clear()
    for key, instance in instances.items():
        closer = _closers.get(key)
        if closer is not None:
            try:
                closer(instance)
            except Exception:  # noqa: BLE001, S110 - closing a stale client must not break a reset
                pass
