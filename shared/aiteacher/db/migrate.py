"""Run the Alembic history programmatically (`aiteacher migrate`, the dev server, tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config


def find_alembic_ini() -> Path:
    candidates = [os.environ.get("AITEACHER_ALEMBIC_INI", "")]
    candidates += [str(parent / "alembic.ini") for parent in (Path.cwd(), *Path.cwd().parents)]
    candidates.append(str(Path(__file__).resolve().parents[3] / "alembic.ini"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("alembic.ini not found: run from the repository or set AITEACHER_ALEMBIC_INI")


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    from aiteacher.config import get_settings
    from aiteacher.db import ensure_sqlite_folder

    config = Config(str(find_alembic_ini()))
    config.attributes["url"] = url or get_settings().primary_database_url
    ensure_sqlite_folder(config.attributes["url"])
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
