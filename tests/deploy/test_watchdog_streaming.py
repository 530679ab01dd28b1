"""Server-sent events from `chat` through a real of-watchdog in http mode, configured exactly as the template's
Dockerfile configures it (mode, fprocess, upstream_url, ready_path, the timeouts): the first `delta` reaches the
client while the (fake) model still holds the rest of the answer.

of-watchdog sends a request whose `Accept` names `text/event-stream` through Go's reverse proxy, which flushes
each write of an event stream at once; anything else it buffers whole. The test needs the binary: set
OF_WATCHDOG_BIN, or put `of-watchdog` (or `fwatchdog`, its name in the image) on PATH; it is skipped otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.test_template import instructions
from tests.fakes import fake_openai_fixture  # noqa: F401 - registers the fake_openai fixture
from tests.helpers import hierarchy, place, signed_in
from tests.integration.test_tutor import openai_configured  # noqa: F401 - fixture
from tests.integration.test_tutor_conversations import course, first_event_before_the_model_finished  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
WATCHDOG = os.environ.get("OF_WATCHDOG_BIN") or shutil.which("of-watchdog") or shutil.which("fwatchdog")
needs_watchdog = pytest.mark.skipif(
    not WATCHDOG or not os.access(WATCHDOG, os.X_OK),
    reason="no of-watchdog binary: set OF_WATCHDOG_BIN or put of-watchdog (fwatchdog) on PATH",
)
#: of-watchdog's own variables (it reads lower-case names); the rest of the image's ENV are image paths.
WATCHDOG_VARIABLES = ("mode", "fprocess", "upstream_url", "ready_path", "prefix_logs")


def template_watchdog_env() -> dict[str, str]:
    """The ENV of the template's Dockerfile that of-watchdog reads."""
    env: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest) if "=" in item)
    return {k: v for k, v in env.items() if k in WATCHDOG_VARIABLES or k.endswith("_timeout") or k.startswith("health")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_template_runs_the_app_behind_the_watchdog_in_http_mode() -> None:
    env = template_watchdog_env()
    assert env["mode"] == "http"
    assert env["fprocess"].startswith("python -m aiteacher.serve handler:app")
    assert env["upstream_url"] == "http://127.0.0.1:" + env["fprocess"].rsplit("--port ", 1)[1].split()[0]
    assert {"read_timeout", "exec_timeout", "write_timeout", "healthcheck_interval"} <= set(env)


@pytest.fixture
def watchdog(openai_configured) -> Iterator[str]:  # type: ignore[no-untyped-def]  # noqa: F811
    """of-watchdog on a free port running the chat function (functions/chat) as its fprocess."""
    from aiteacher.config import reset_caches

    app_port, port = _free_port(), _free_port()
    configured = template_watchdog_env()
    env = {
        **os.environ,
        **configured,
        "fprocess": configured["fprocess"].replace("--port 8000", f"--port {app_port}"),
        "upstream_url": configured["upstream_url"].replace(":8000", f":{app_port}"),
        "port": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `python`: this one
        "FUNCTION_NAME": "chat",
        "WEB_CONCURRENCY": "1",  # the embedded vector store (Qdrant Edge) belongs to one process
        "NO_PROXY": "127.0.0.1,localhost",
    }
    reset_caches()  # this process lets go of the vector store: the function opens it
    process = subprocess.Popen(
        [str(WATCHDOG)],
        cwd=REPO / "functions" / "chat",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else "of-watchdog exited"
            try:
                if httpx.get(f"{base}/_/ready", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the chat function did not become ready behind of-watchdog"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reset_caches()


@needs_watchdog
def test_chat_streams_through_of_watchdog_before_the_model_finishes(
    watchdog: str,
    gateway,
    course,  # noqa: F811
    openai_configured,  # noqa: F811
) -> None:
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as setup:
        user = signed_in(setup)
        place(setup, user, hierarchy(setup)[1], course["semester"])
    with httpx.Client(base_url=watchdog, timeout=30, trust_env=False) as http:
        rest = first_event_before_the_model_finished(http, "/", user, openai_configured, "of-watchdog")
    assert [name for name, _ in rest] == ["delta", "done"]
    assert rest[-1][1]["refused"] is False and rest[-1][1]["citations"]
