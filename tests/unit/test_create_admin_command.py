"""`aiteacher create-admin you@example.edu` as the README shows it: works in a shell with no JWT_SECRET,
on a fresh database, and a settings or password error never repeats the password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SECRET_PASSWORD = "correct horse battery staple 42"


def _run(tmp_path: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JWT_SECRET", "DATABASE_URL", "AITEACHER_ENV", "ADMIN_PASSWORD", "ADMIN_EMAIL")
    }
    env.update(DATA_DIR=str(tmp_path / "data"), SECRETS_DIR=str(tmp_path / "secrets"), **extra)
    return subprocess.run(
        [sys.executable, "-m", "aiteacher.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_create_admin_as_the_readme_shows_works_on_a_fresh_database(tmp_path: Path) -> None:
    result = _run(tmp_path, "create-admin", "you@example.edu", ADMIN_PASSWORD=SECRET_PASSWORD)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "admin you@example.edu ready" in result.stdout
    again = _run(tmp_path, "create-admin", "you@example.edu", ADMIN_PASSWORD=SECRET_PASSWORD)
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_settings_error_never_echoes_the_password(tmp_path: Path) -> None:
    # A whole-settings check fails (RS256 without key files): pydantic's text repeats every input value.
    result = _run(tmp_path, "create-admin", "you@example.edu", ADMIN_PASSWORD=SECRET_PASSWORD, JWT_ALGORITHM="RS256")
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "error:" in output and "Traceback" not in output
    assert "battery staple" not in output
    assert "input_value" not in output  # pydantic repeats (a shortened repr of) every input: the password too


def test_a_short_password_is_refused_without_repeating_it(tmp_path: Path) -> None:
    result = _run(tmp_path, "create-admin", "you@example.edu", ADMIN_PASSWORD="shorty1")
    assert result.returncode == 2
    assert "8-128 characters" in result.stderr and "shorty1" not in result.stdout + result.stderr
