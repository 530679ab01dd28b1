"""Commands that never sign or verify a token (the migrate Job, create-admin, sqs-forward) run in production
without JWT_SECRET; functions still refuse to start without one, and nothing ever makes up a key there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from aiteacher.config import Settings


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "DATABASE_URL", "EVENTS_QUEUE_URL")}
    env.update(
        AITEACHER_ENV="production",
        SECRETS_DIR=str(tmp_path / "secrets"),
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        **extra,
    )
    return env


def test_migrate_job_runs_in_production_without_a_jwt_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiteacher.cli", "migrate"],
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "database at head" in result.stdout


def test_sqs_forward_in_production_without_a_jwt_secret_gets_past_settings(tmp_path: Path) -> None:
    # No queue URL: it must stop on that (exit 2, its own message), not on a JWT_SECRET validation error.
    env = _production_env(tmp_path, EVENTS_TOKEN="forwarder-token-0123456789")
    env.pop("EVENTS_QUEUE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "aiteacher.cli", "events", "sqs-forward", "--target", "http://127.0.0.1:9/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "EVENTS_QUEUE_URL" in result.stderr and "JWT_SECRET" not in result.stderr


def test_functions_still_refuse_production_without_a_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AITEACHER_ENV", "production")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("JWT_REQUIRED", raising=False)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings()


def test_a_process_without_tokens_never_makes_up_a_key_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AITEACHER_ENV", "production")
    monkeypatch.setenv("JWT_REQUIRED", "false")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="cannot sign or verify"):
        Settings().jwt_signing_secret()
    assert not (tmp_path / "jwt-secret").exists()
