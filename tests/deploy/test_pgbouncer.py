"""PgBouncer (infra/pgbouncer): transaction pooling on 6432 with a pool budget PostgreSQL can hold, and
our engine's behaviour under it (checked live when the suite itself runs through PgBouncer, as in CI)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INI = REPO / "infra" / "pgbouncer" / "pgbouncer.ini"
POSTGRES_MAX_CONNECTIONS = 100  # PostgreSQL's default
PGBOUNCER_REPLICAS = 2  # infra/k8s/pgbouncer.yaml


def config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(INI.read_text())
    return parser


def test_transaction_pooling_on_6432() -> None:
    settings = config()["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    assert settings["listen_port"] == "6432"
    assert settings["server_reset_query"] == ""  # DISCARD ALL is for session pooling
    assert settings["auth_file"] == "/etc/pgbouncer/userlist.txt"
    assert config()["databases"]["*"].startswith("host=postgres port=5432")


def test_pool_budget_fits_postgresql() -> None:
    settings = config()["pgbouncer"]
    servers = int(settings["max_db_connections"]) * PGBOUNCER_REPLICAS
    assert servers < POSTGRES_MAX_CONNECTIONS - 3 - 10  # superuser reserve and headroom for migrate/psql
    pool = int(settings["default_pool_size"]) + int(settings["reserve_pool_size"])
    assert pool <= int(settings["max_db_connections"])
    from aiteacher.config import Settings
    from aiteacher_devtools.stack import functions

    per_replica = Settings.model_fields["db_pool_size"].default + Settings.model_fields["db_max_overflow"].default
    clients = len(functions()) * 5 * per_replica  # Community Edition: at most 5 replicas per function
    assert clients <= int(settings["max_client_conn"])


def test_userlist_lines_are_quoted_pairs() -> None:
    for line in (REPO / "infra" / "pgbouncer" / "userlist.txt").read_text().splitlines():
        assert re.fullmatch(r'"[^"]+" "[^"]*"', line), line


def test_engine_sets_no_session_state_behind_pgbouncer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """DB_USE_PGBOUNCER=true: no application_name (a session setting PgBouncer would leak between clients)."""
    from aiteacher import config as config_module
    from aiteacher.db import _build_engine

    monkeypatch.setenv("DB_USE_PGBOUNCER", "true")
    config_module.get_settings.cache_clear()
    try:
        captured: dict = {}
        import sqlalchemy

        real = sqlalchemy.create_engine
        monkeypatch.setattr(sqlalchemy, "create_engine", lambda url, **kw: captured.update(kw) or real(url, **kw))
        _build_engine("postgresql+psycopg2://user@127.0.0.1:6432/db").dispose()
        assert "application_name" not in captured["connect_args"]
        assert captured["pool_pre_ping"] is True
    finally:
        monkeypatch.undo()
        config_module.get_settings.cache_clear()


def test_live_transactions_through_pgbouncer() -> None:
    from aiteacher.config import get_settings

    settings = get_settings()
    if not (settings.db_use_pgbouncer and settings.primary_database_url.startswith("postgresql")):
        pytest.skip("the suite is not running through PgBouncer (CI's third run is: DB_USE_PGBOUNCER=true)")
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    from aiteacher.db import transaction

    def work(i: int) -> int:
        with transaction() as session:
            assert session.execute(text("show application_name")).scalar() in ("", None)
            return session.execute(text("select :n + 1"), {"n": i}).scalar()  # bound parameters, no PREPARE

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(64))) == list(range(1, 65))
