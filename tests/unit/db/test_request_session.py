"""The handlers' `Db` / `ReadDb` dependency: opened on first use, committed before the reply is sent,
rolled back on an error, and a failed commit is a problem reply, never a 200."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from aiteacher.db import get_engine, transaction
from aiteacher.db.models import Faculty
from aiteacher.errors import NotFound
from aiteacher.web import Db, ReadDb, create_app


@pytest.fixture
def checkouts() -> Iterator[list[object]]:
    """Every connection the pool hands out while the test runs."""
    taken: list[object] = []
    engine = get_engine()

    def count(*_: object) -> None:
        taken.append(object())

    event.listen(engine, "checkout", count)
    yield taken
    event.remove(engine, "checkout", count)


def _faculty_codes() -> set[str]:
    with transaction(read_only=True) as session:
        return set(session.scalars(select(Faculty.code)))


_created: list[str] = []


def _code() -> str:
    code = "T" + uuid.uuid4().hex[:10].upper()
    _created.append(code)
    return code


@pytest.fixture(autouse=True)
def _forget_probe_faculties() -> Iterator[None]:
    """The probe faculties go when the test ends: other tests read the hierarchy (GET /faculties)."""
    yield
    from sqlalchemy import delete

    with transaction() as session:
        session.execute(delete(Faculty).where(Faculty.code.in_(_created)))
    _created.clear()


def test_a_route_that_does_not_use_its_session_opens_no_connection(checkouts: list[object]) -> None:
    app = create_app("probe", "a probe")

    @app.get("/idle")
    def idle(db: Db, read: ReadDb) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/busy")
    def busy(db: Db) -> dict[str, int]:
        return {"faculties": len(list(db.scalars(select(Faculty.id))))}

    @app.get("/plain")
    def plain() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as client:
        client.get("/plain")  # the first request of a process may restore the deny-list (its own query)
        checkouts.clear()
        assert client.get("/idle").json() == {"ok": True}
        assert checkouts == []
        assert client.get("/busy").status_code == 200
    assert len(checkouts) == 1


def test_the_write_is_committed_when_the_reply_is_2xx() -> None:
    app = create_app("probe", "a probe")
    code = _code()

    @app.post("/faculty", status_code=201)
    def add(db: Db) -> dict[str, str]:
        db.add(Faculty(code=code, name="Committed"))
        db.flush()
        return {"code": code}

    with TestClient(app) as client:
        assert client.post("/faculty").status_code == 201
    assert code in _faculty_codes()


def test_an_error_in_the_handler_rolls_back_and_is_its_problem_reply() -> None:
    app = create_app("probe", "a probe")
    code = _code()

    @app.post("/faculty")
    def add_then_fail(db: Db) -> dict[str, str]:
        db.add(Faculty(code=code, name="Rolled back"))
        db.flush()
        raise NotFound("No such thing")

    with TestClient(app) as client:
        response = client.post("/faculty")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert code not in _faculty_codes()


def test_a_failed_commit_is_a_problem_reply_not_a_200() -> None:
    """The commit runs before the reply is sent: a unique violation found only at commit time (no flush
    in the handler) turns the reply into a 500 problem, and nothing is stored."""
    app = create_app("probe", "a probe")
    code = _code()
    with transaction() as session:
        session.add(Faculty(code=code, name="First"))

    @app.post("/faculty")
    def add_duplicate(db: Db) -> dict[str, str]:
        db.add(Faculty(code=code, name="Duplicate, refused at commit"))
        return {"stored": code}

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/faculty")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "stored" not in response.text
    with transaction(read_only=True) as session:
        assert session.scalars(select(Faculty.name).where(Faculty.code == code)).all() == ["First"]


def test_an_unreachable_database_at_commit_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    app = create_app("probe", "a probe")

    def refuse(self: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    @app.post("/faculty")
    def add(db: Db) -> dict[str, str]:
        db.add(Faculty(code=_code(), name="Never stored"))
        monkeypatch.setattr(Session, "commit", refuse)
        return {"stored": "yes"}

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/faculty")
    monkeypatch.undo()
    assert response.status_code == 503 and response.json()["code"] == "service_unavailable"


def test_after_commit_callbacks_run_once_the_request_commits_and_never_on_error() -> None:
    from aiteacher.db import after_commit

    app = create_app("probe", "a probe")
    ran: list[str] = []

    @app.post("/ok")
    def ok(db: Db) -> dict[str, bool]:
        db.scalar(select(Faculty.id))
        after_commit(db, lambda: ran.append("ok"))
        return {"ok": True}

    @app.post("/fail")
    def fail(db: Db) -> dict[str, bool]:
        db.scalar(select(Faculty.id))
        after_commit(db, lambda: ran.append("fail"))
        raise NotFound("gone")

    with TestClient(app) as client:
        assert client.post("/ok").status_code == 200
        assert client.post("/fail").status_code == 404
    assert ran == ["ok"]


def test_a_read_session_never_commits() -> None:
    """`ReadDb` is `transaction(read_only=True)`: whatever a handler writes through it is rolled back, even
    when the reply is a 200."""
    app = create_app("probe", "a probe")
    code = _code()

    @app.post("/faculty")
    def add(db: ReadDb) -> dict[str, str]:
        db.add(Faculty(code=code, name="Written through a read session"))
        db.flush()
        return {"code": code}

    with TestClient(app) as client:
        assert client.post("/faculty").status_code == 200
    assert code not in _faculty_codes()


def test_closing_early_commits_and_a_later_use_opens_a_new_scope() -> None:
    """`db.close()` (search, the page routes) ends the scope at once: the write is committed before the
    handler goes on, and using the session again opens a fresh one that commits at the end too."""
    app = create_app("probe", "a probe")
    first, second = _code(), _code()
    seen: dict[str, bool] = {}

    @app.post("/faculty")
    def add(db: Db) -> dict[str, str]:
        db.add(Faculty(code=first, name="First scope"))
        db.close()
        seen["committed before the handler went on"] = first in _faculty_codes()
        db.add(Faculty(code=second, name="Second scope"))
        return {"ok": "yes"}

    with TestClient(app) as client:
        assert client.post("/faculty").status_code == 200
    assert seen == {"committed before the handler went on": True}
    assert {first, second} <= _faculty_codes()
