"""Engines (one per URL, built on first use) and the single session scope.

`transaction()` commits once, at the request or job boundary, and then runs the callbacks registered
with `after_commit()` (jobs are enqueued only once their rows are visible). `read_only=True` uses
`DATABASE_READ_URL` when set and never commits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aiteacher.errors import ServiceUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _forget_pools_in_child() -> None:
    """A forked process (RQ's work-horse) must not use its parent's pooled connections: a SQLite or
    PostgreSQL connection shared across fork hangs or corrupts the protocol. The child opens its own."""
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pools_in_child)


def ensure_sqlite_folder(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and path and path != ":memory:":
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _build_engine(url: str) -> Engine:
    from sqlalchemy import create_engine, event

    from aiteacher.config import get_settings

    settings = get_settings()
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: no corruption, fewer fsyncs
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args = {"connect_timeout": 5, "application_name": settings.function_name or "aiteacher"}
    if settings.db_use_pgbouncer:
        # Transaction pooling: no session-level settings may outlive a transaction.
        connect_args.pop("application_name")
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=300,
        connect_args=connect_args,
    )


def get_engine(read_only: bool = False) -> Engine:
    from aiteacher.config import get_settings

    settings = get_settings()
    url = settings.read_database_url if read_only else settings.primary_database_url
    engine = _engines.get(url)
    if engine is None:
        with _lock:
            engine = _engines.get(url)
            if engine is None:
                engine = _engines[url] = _build_engine(url)
    return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the surrounding transaction has committed (never if it rolls back)."""
    session.info.setdefault("after_commit", []).append(callback)


@contextmanager
def transaction(read_only: bool = False) -> Iterator[Session]:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    session = Session(get_engine(read_only), expire_on_commit=False)
    try:
        yield session
        if read_only:
            session.rollback()
        else:
            session.commit()
    except OperationalError as exc:
        session.rollback()
        raise ServiceUnavailable("The database is unreachable; try again shortly") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        callbacks = session.info.pop("after_commit", [])
        session.close()
    # Reached only when the block and the commit succeeded.
    for callback in callbacks:
        callback()
