"""Secrets committed to the repository are refused outside dev; common and blank passwords are refused
(#8 item 9). The committed-values file shipped in the package must match the repository."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from aiteacher.config import Settings
from aiteacher.security import committed, passwords

REPO = Path(__file__).resolve().parents[3]
STRONG = "a-strong-secret-nobody-committed-" + "7" * 20


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("AITEACHER_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", STRONG)
    for name in ("EVENTS_TOKEN", "S3_SECRET_ACCESS_KEY", "ADMIN_PASSWORD", "OPENAI_API_KEY", "QDRANT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_old_docker_compose_jwt_secret_is_refused_in_production(production) -> None:
    production.setenv("JWT_SECRET", "compose-only-jwt-secret-change-me-0123456789abcdef")
    with pytest.raises(ValidationError, match="JWT_SECRET: the value appears in a file committed"):
        Settings()


@pytest.mark.parametrize(
    "variable,value",
    [
        ("EVENTS_TOKEN", "compose-only-events-token-change-me"),
        ("S3_SECRET_ACCESS_KEY", "testing"),  # the README's embedded-S3 example
        ("ADMIN_PASSWORD", "admin password"),  # the README's walk-through
    ],
)
def test_secrets_found_in_committed_files_are_refused_in_production(production, variable, value) -> None:
    production.setenv(variable, value)
    with pytest.raises(ValidationError, match=f"{variable}: the value appears"):
        Settings()


def test_every_secret_looking_value_of_docker_compose_and_the_docs_is_known() -> None:
    from aiteacher_devtools.manifests import secrets

    texts = secrets.scanned_texts(REPO)
    values = set().union(*(secrets.candidates(text) for text in texts.values()))
    assert "aiteacher-minio-secret" in values or committed.is_committed("aiteacher-minio-secret")
    for value in values:
        assert committed.is_committed(value), value


def test_own_secrets_are_accepted_in_production_and_committed_ones_in_dev(production) -> None:
    assert Settings().jwt_secret == STRONG
    production.setenv("AITEACHER_ENV", "dev")
    production.setenv("EVENTS_TOKEN", "compose-only-events-token-change-me")
    assert Settings().events_token == "compose-only-events-token-change-me"


def test_the_committed_values_file_is_in_sync_with_the_repository() -> None:
    from aiteacher_devtools import manifests
    from aiteacher_devtools.manifests import secrets

    files = manifests.generate(manifests.load(REPO))
    assert files[secrets.RELATIVE_DATA_FILE] == (REPO / secrets.RELATIVE_DATA_FILE).read_text(), (
        "run `aiteacher manifests`"
    )
    assert committed.DATA_FILE.resolve() == (REPO / secrets.RELATIVE_DATA_FILE).resolve()


def test_the_common_password_list_has_over_100k_entries_and_every_one_is_found() -> None:
    lines = gzip.decompress(passwords.COMMON_PASSWORDS.read_bytes()).decode().splitlines()
    assert len(lines) >= 100_000
    assert lines == sorted(lines, key=str.encode)
    for entry in [*random.Random(8).sample(lines, 2000), lines[0], lines[-1]]:
        assert passwords.is_common(entry) and passwords.is_common(entry.upper() if entry.isascii() else entry)
    assert not passwords.is_common(lines[0] + "\x01")


def test_the_passwords_the_tests_and_the_readme_use_are_not_common() -> None:
    from tests.conftest import ADMIN_PASSWORD
    from tests.helpers import PASSWORD

    for password in (
        PASSWORD,
        ADMIN_PASSWORD,
        "correct horse battery",
        "admin password",
        "wrong password",
        "not the password",
        "not the password at all",
    ):
        passwords.check_new_password(password)
