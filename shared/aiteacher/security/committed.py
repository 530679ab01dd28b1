"""Secrets that must never be used outside dev: every value committed to this repository.

A default in docker-compose.yml, an example in the docs or a test value in a stack file is public: a
JWT_SECRET copied from there lets anyone forge an admin token. Outside dev, settings refuse any secret
whose value appears in a committed file. Function images do not contain those files, so
`aiteacher manifests` (aiteacher_devtools.manifests.secrets) extracts the candidate values into package data
(`data/committed-secrets.txt`, SHA-256 prefixes only) and `aiteacher manifests --check` (and a test) keep it
in step with the repo; this module only reads that list.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DATA_FILE = Path(__file__).with_name("data") / "committed-secrets.txt"
# Secret settings and, for URLs, their password part.
SECRET_FIELDS = (
    "jwt_secret",
    "events_token",
    "admin_password",
    "s3_secret_access_key",
    "qdrant_api_key",
    "openai_api_key",
)
URL_FIELDS = ("database_url", "database_read_url", "redis_url", "smtp_url")
DIGEST_CHARS = 20


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:DIGEST_CHARS]


def url_password(value: str) -> str | None:
    try:
        return urlsplit(value).password
    except ValueError:
        return None


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    try:
        lines = DATA_FILE.read_text().splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def is_committed(value: str) -> bool:
    return bool(value) and digest(value) in _known()


def committed_secret_fields(settings: Any) -> list[str]:
    """Names of the secret settings whose value (or URL password) appears in a committed file."""
    found = [name for name in SECRET_FIELDS if is_committed(str(getattr(settings, name, "") or ""))]
    for name in URL_FIELDS:
        password = url_password(str(getattr(settings, name, "") or ""))
        if password and is_committed(password):
            found.append(name)
    return found
