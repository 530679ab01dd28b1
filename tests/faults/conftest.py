"""Private PostgreSQL and Redis servers on loopback ports that these tests start, stop and restart
themselves (never the machine's shared ones), and a switch that points the application at them.

The fault suite runs in the embedded-defaults pass only (CI runs the suite three times; the servers here
are the suite's own either way), and is skipped when the server binaries are missing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
REDIS_SERVER = shutil.which("redis-server")

# CI runs the suite three times; the fault suite starts its own servers, so once is enough.
ONLY_IN_EMBEDDED_PASS = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="the fault suite runs once, in the embedded-defaults pass"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if (probe.connect_ex(("127.0.0.1", port)) == 0) == up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'}")


class PrivateRedis:
    """redis-server without persistence: a restart comes back empty, like a replaced pod."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        _wait_port(self.port, up=False)

    def restart_empty(self) -> None:
        self.stop()
        self.start()


class PrivatePostgres:
    """initdb + pg_ctl on a private port (as the postgres user when the tests run as root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="aiteacher-pg-"))
        self.data = self.root / "data"
        self.bin = Path(PG_BIN[-1])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off",
            "start",
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        _wait_port(self.port, up=False)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, TimeoutError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateReplica(PrivatePostgres):
    """A streaming replica of a PrivatePostgres (`pg_basebackup -R`), applying WAL `delay` late so that
    replica lag is certain, not a race."""

    def __init__(self, primary: PrivatePostgres, delay: str = "1500ms") -> None:
        super().__init__()
        self.primary = primary
        self.delay = delay

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
        )
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"recovery_min_apply_delay = '{self.delay}'\nhot_standby = on\n")


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if not REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries are not installed")
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.destroy()


@contextmanager
def pointed_at(**env: str) -> Iterator[None]:
    """Point the application (settings, engines, Redis clients) at other servers for a block."""
    from aiteacher.cache import forget_async_clients
    from aiteacher.config import reset_caches
    from aiteacher.db import dispose_engines
    from aiteacher.seed import migrate_and_seed

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)

    def switch() -> None:
        dispose_engines()
        reset_caches()
        forget_async_clients()

    switch()
    try:
        if "DATABASE_URL" in env:
            migrate_and_seed()
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        switch()
