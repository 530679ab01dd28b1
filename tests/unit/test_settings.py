from __future__ import annotations

import pytest
from pydantic import ValidationError

from aiteacher.config import Settings

STRONG = "s" * 40


@pytest.mark.parametrize("secret", ["", "changeme", "secret", "short-secret"])
def test_production_refuses_missing_default_or_short_jwt_secret(monkeypatch, secret: str) -> None:
    monkeypatch.setenv("AITEACHER_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings()


def test_dev_generates_and_keeps_a_secret(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AITEACHER_ENV", "dev")
    monkeypatch.setenv("JWT_SECRET", "")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    first = Settings().jwt_signing_secret()
    assert len(first) >= 32
    assert Settings().jwt_signing_secret() == first
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0


def test_openfaas_secret_files_with_hyphenated_names(monkeypatch, tmp_path) -> None:
    (tmp_path / "jwt-secret").write_text(STRONG + "\n")
    (tmp_path / "database-url").write_text("postgresql://u:p@db:6432/app")
    monkeypatch.setenv("AITEACHER_ENV", "production")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    settings = Settings()
    assert settings.jwt_secret == STRONG
    assert settings.primary_database_url == "postgresql+psycopg2://u:p@db:6432/app"


def test_environment_wins_over_secret_file(monkeypatch, tmp_path) -> None:
    (tmp_path / "jwt-secret").write_text(STRONG)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("JWT_SECRET", "e" * 40)
    assert Settings().jwt_secret == "e" * 40


def test_asymmetric_algorithms_need_key_files(monkeypatch) -> None:
    monkeypatch.setenv("JWT_ALGORITHM", "EdDSA")
    with pytest.raises(ValidationError, match="JWT_PRIVATE_KEY_FILE"):
        Settings()


def test_rate_limit_overrides_and_cors_list(monkeypatch) -> None:
    monkeypatch.setenv("RATE_LIMITS", '{"search": "5/10"}')
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert settings.rate_limit_for("search") == (5, 10)
    assert settings.rate_limit_for("me") == (settings.rate_limit_requests, settings.rate_limit_window_seconds)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_env_example_lists_every_setting() -> None:
    from pathlib import Path

    from aiteacher_devtools.cli import env_example

    committed = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    assert committed == env_example(), "run `make env-example` and commit .env.example"
