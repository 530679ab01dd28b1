"""Engines (one per URL, built on first use) and the single session scope.

`transaction()` commits once, at the request or job boundary, and then runs the callbacks registered
with `after_commit()` (jobs are enqueued only once their rows are visible). `read_only=True` uses
`DATABASE_READ_URL` when set and never commits.

Read replicas, read-your-writes: when a signed-in caller's write commits, the primary's WAL position is
kept in Redis for READ_YOUR_WRITES_SECONDS; that caller's reads go to the replica only once
`pg_last_wal_replay_lsn()` there has passed it, else to the primary. A replica that cannot be reached
sends reads to the primary for REPLICA_RETRY_SECONDS; Redis unreachable means primary too. So a GET right
after PUT /me, POST /generate or an upload never sees lag, and a stopped replica costs no request a 5xx.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from aiteacher.errors import ServiceUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult, Engine
    from sqlalchemy.orm import Session
    from sqlalchemy.sql import Executable

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_replica_down_until = [0.0]
ALWAYS_PRIMARY = "FFFFFFFF/FFFFFFFF"  # a WAL position no replica has reached
caller_var: ContextVar[str | None] = ContextVar("db_caller", default=None)


def reading_as(user_id: str | None) -> None:
    """Whose writes this request's reads must see (set by `admit` for signed-in callers)."""
    caller_var.set(user_id)


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
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
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


def rows_affected(session: Session, statement: Executable) -> int:
    """Execute an INSERT, UPDATE or DELETE and return how many rows it touched (its cursor's rowcount)."""
    return int(cast("CursorResult[Any]", session.execute(statement)).rowcount)


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run `callback` once the surrounding transaction has committed (never if it rolls back)."""
    session.info.setdefault("after_commit", []).append(callback)


def _has_replica() -> bool:
    from aiteacher.config import get_settings

    settings = get_settings()
    return settings.read_database_url != settings.primary_database_url


def _marker_key(user_id: str) -> str:
    return f"db:written:{user_id}"


def _written_position() -> str | None:
    """The caller's last write position; "" means unknown (Redis away): read from the primary."""
    caller = caller_var.get()
    if caller is None:
        return None
    try:
        from aiteacher.cache import get_redis

        raw = get_redis().get(_marker_key(caller))
    except Exception:  # noqa: BLE001 - unsure whether the replica has the caller's writes
        return ""
    if not raw:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _read_session() -> Session:
    """A session on the replica when it is up and has the caller's writes, else on the primary."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from aiteacher.config import get_settings

    primary = Session(get_engine(), expire_on_commit=False)
    if not _has_replica() or time.monotonic() < _replica_down_until[0]:
        return primary
    position = _written_position()
    if position == "":
        return primary
    replica = Session(get_engine(read_only=True), expire_on_commit=False)
    try:
        if position:
            caught_up = replica.execute(
                text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"), {"lsn": position}
            ).scalar()
            if not caught_up:
                replica.close()
                return primary
        else:
            replica.connection()  # connect now: a dead replica is found before the caller's queries
    except OperationalError:
        replica.close()
        _replica_down_until[0] = time.monotonic() + get_settings().replica_retry_seconds
        import logging

        logging.getLogger("aiteacher.db").warning("read replica unreachable; reading from the primary")
        return primary
    primary.close()
    return replica


def _write_position(session: Session) -> str | None:
    """The primary's WAL position after this caller's commit (None without a replica or a caller)."""
    from sqlalchemy import text

    if caller_var.get() is None or not _has_replica() or session.get_bind().dialect.name != "postgresql":
        return None
    try:
        return str(session.execute(text("SELECT pg_current_wal_lsn()")).scalar())
    except Exception:  # noqa: BLE001 - committed anyway; this caller reads from the primary for a while
        return ALWAYS_PRIMARY


def _remember_write_position(position: str) -> None:
    from aiteacher.config import get_settings

    caller = caller_var.get()
    try:
        from aiteacher.cache import get_redis

        get_redis().set(_marker_key(str(caller)), position, ex=get_settings().read_your_writes_seconds)
    except Exception:  # noqa: BLE001 - without the marker the replica may serve this caller stale reads
        import logging

        logging.getLogger("aiteacher.db").warning("could not record the write position of %s", caller)


@contextmanager
def transaction(read_only: bool = False) -> Iterator[Session]:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    session = _read_session() if read_only else Session(get_engine(), expire_on_commit=False)
    position = None
    try:
        yield session
        if read_only:
            session.rollback()
        else:
            session.commit()
            position = _write_position(session)
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
    if position:
        _remember_write_position(position)
    for callback in callbacks:
        callback()


class LazySession:
    """A request's session, opened on first use: a handler that never touches it costs no connection,
    and a read-only one picks primary or replica only then. Attribute access goes to the real session,
    so services take it as a `Session`. `close()` ends the scope exactly as `transaction()` does
    (commit or rollback, then the `after_commit` callbacks); the web layer's `Db` / `ReadDb` call it."""

    def __init__(self, read_only: bool = False):
        self.read_only = read_only
        self._scope: contextlib.AbstractContextManager[Session] | None = None
        self._session: Session | None = None

    @property
    def opened(self) -> bool:
        return self._session is not None

    def _open(self) -> Session:
        if self._session is None:
            self._scope = transaction(read_only=self.read_only)
            self._session = self._scope.__enter__()
        return self._session

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("read_only", "_scope", "_session"):
            raise AttributeError(name)
        return getattr(self._open(), name)

    def close(self, error: BaseException | None = None) -> None:
        """Commit (or, with `error`, roll back) if the session was opened. A failed commit raises."""
        scope, self._scope, self._session = self._scope, None, None
        if scope is None:
            return
        if error is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(error), error, error.__traceback__)


def request_session(read_only: bool = False) -> Iterator[LazySession]:
    """The body of a request-scoped session dependency (see `aiteacher.web.Db`)."""
    lazy = LazySession(read_only)
    try:
        yield lazy
    except BaseException as error:
        lazy.close(error)
        raise
    lazy.close()
