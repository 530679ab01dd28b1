"""The image's server (`python -m aiteacher.serve`) as of-watchdog drives it, over real HTTP: a slow request
gets a problem+json 504 before the watchdog's exec_timeout, SIGTERM drains (in-flight requests finish, new
ones get 503 + Retry-After, exit 0 — plain uvicorn closes its socket and re-raises SIGTERM, so the watchdog
exited 1), and Server-Sent Events stream past the deadline."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

APP = textwrap.dedent("""
    import asyncio
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/_/health")
    def health():
        return {"status": "ok"}

    @app.get("/sleep/{seconds}")
    async def sleep(seconds: float):
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/pid/{seconds}")
    async def pid(seconds: float):
        import os

        await asyncio.sleep(seconds)
        return {"pid": os.getpid()}

    @app.get("/events")
    async def events():
        async def stream():
            for n in range(4):
                yield f"data: {n}\\n\\n"
                await asyncio.sleep(0.6)
        return StreamingResponse(stream(), media_type="text/event-stream")
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    (tmp_path / "handler.py").write_text(APP)
    started: list[subprocess.Popen] = []

    def start(
        exec_timeout: str = "", drain: float = 1.0, workers: str = "1", env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen, str]:
        port = _free_port()
        # Temporary folders (the workers' metrics) under tmp_path: a server killed at teardown cannot remove them.
        scratch = tmp_path / "server-tmp"
        scratch.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "TMPDIR": str(scratch),
            "exec_timeout": exec_timeout,
            "WEB_CONCURRENCY": workers,
            **(env or {}),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiteacher.serve",
                "handler:app",
                "--port",
                str(port),
                "--drain-seconds",
                str(drain),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/_/health", timeout=1).status_code == 200:
                    return process, base
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(process.stdout.read() if process.poll() is not None else "not up")

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()  # the workers follow their server (PR_SET_PDEATHSIG): none is left behind
            process.wait()


def test_a_slow_request_gets_a_problem_504_before_the_watchdogs_exec_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    _, base = serve(exec_timeout="3s")  # app deadline: 1.5 s, under the watchdog's 3 s
    reply = httpx.get(f"{base}/sleep/2.5", timeout=10)
    assert reply.status_code == 504
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "timeout"
    assert httpx.get(f"{base}/sleep/0.1", timeout=10).json() == {"slept": 0.1}


def test_server_sent_events_stream_past_the_deadline(serve) -> None:  # type: ignore[no-untyped-def]
    _, base = serve(exec_timeout="3s")
    arrivals = []
    with httpx.stream("GET", f"{base}/events", headers={"Accept": "text/event-stream"}, timeout=10) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        start = time.monotonic()
        for line in reply.iter_lines():
            if line.startswith("data:"):
                arrivals.append((line, time.monotonic() - start))
    assert [line for line, _ in arrivals] == [f"data: {n}" for n in range(4)]
    assert arrivals[0][1] < arrivals[-1][1]  # streamed, not buffered to the end


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_in_flight_refuses_new_with_503_and_exits_0(serve, workers: str) -> None:  # type: ignore[no-untyped-def]
    process, base = serve(drain=1.5, workers=workers)
    results: dict[str, httpx.Response] = {}
    slow = threading.Thread(target=lambda: results.setdefault("slow", httpx.get(f"{base}/sleep/1.0", timeout=10)))
    slow.start()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    refused = httpx.get(f"{base}/sleep/0", timeout=5)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["code"] == "shutting_down"
    assert httpx.get(f"{base}/_/health", timeout=5).status_code == 503  # readiness fails while draining
    slow.join(10)
    assert results["slow"].status_code == 200 and results["slow"].json() == {"slept": 1.0}
    assert process.wait(timeout=30) == 0


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
def test_web_concurrency_workers_share_one_port(serve) -> None:  # type: ignore[no-untyped-def]
    """One replica, several event loops: WEB_CONCURRENCY processes forked from the server on its one port."""
    process, base = serve(workers="3")
    workers = _children(process.pid)
    assert len(workers) == 3
    seen: set[int] = set()
    for _round in range(10):  # concurrent slow requests spread over the workers (the kernel picks one per connection)
        replies: list[httpx.Response] = []

        def ask(sink: list[httpx.Response] = replies) -> None:
            sink.append(httpx.get(f"{base}/pid/0.3", timeout=10))

        threads = [threading.Thread(target=ask) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen |= {reply.json()["pid"] for reply in replies}
        if len(seen) > 1:
            break
    assert len(seen) > 1 and seen <= workers


def test_a_burst_of_connections_is_spread_evenly_over_the_workers(serve) -> None:  # type: ignore[no-untyped-def]
    """Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new connections by hash. On one
    shared socket, the worker that woke first accepted most of a burst (asyncio accepts up to 100 connections per
    wake-up): 142 of 200 keep-alive connections on one worker in the chat capacity bench, whose turns then waited
    for its one core while the other idled."""
    import asyncio
    import json

    process, base = serve(workers="2")
    host, port = base.removeprefix("http://").split(":")
    clients = 200

    async def ask() -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /pid/0.5 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        body = (await reader.read()).split(b"\r\n\r\n", 1)[1]
        writer.close()
        return int(json.loads(body)["pid"])

    async def burst() -> list[int]:
        return list(await asyncio.gather(*(ask() for _ in range(clients))))

    pids = asyncio.run(burst())
    counts = sorted(pids.count(pid) for pid in _children(process.pid))
    assert sum(counts) == clients
    assert counts[0] >= clients // 3, f"connections per worker: {counts}"


def test_a_second_server_on_a_port_in_use_fails_instead_of_sharing_it(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SO_REUSEPORT lets processes of one user share a port: a stale server would take half the requests."""
    _, base = serve(workers="2")
    port = base.rsplit(":", 1)[1]
    second = subprocess.Popen(
        [sys.executable, "-m", "aiteacher.serve", "handler:app", "--port", port],
        cwd=tmp_path,
        env={**os.environ, "WEB_CONCURRENCY": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        second.send_signal(signal.SIGTERM)  # it serves: its workers drain and exit with it
        second.communicate(timeout=30)
        raise AssertionError("a second server started on a port in use") from None
    assert second.returncode != 0
    assert "Address already in use" in output


def test_the_workers_metrics_folder_is_removed_when_the_server_exits(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Several workers keep their metrics in a fresh temporary folder per start: gone once the server is."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process, base = serve(workers="2", drain=0.2, env={"TMPDIR": str(scratch)})
    assert "aiteacher_build_info" in httpx.get(f"{base}/_/metrics", timeout=5).text
    assert [path.name[:18] for path in scratch.iterdir()] == ["aiteacher-metrics-"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert list(scratch.iterdir()) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
def test_a_worker_that_dies_takes_the_replica_down_with_exit_1(serve) -> None:  # type: ignore[no-untyped-def]
    """A replica missing a worker would serve on with less capacity than it reports: it exits, and the watchdog
    (which exits when its fprocess does) gets the container restarted."""
    process, _ = serve(workers="2")
    victim = sorted(_children(process.pid))[0]
    os.kill(victim, signal.SIGKILL)
    assert process.wait(timeout=30) == 1


def test_worker_count_follows_web_concurrency_then_the_cpu_limit(tmp_path: Path) -> None:
    from aiteacher.serve import MAX_AUTO_WORKERS, UNLIMITED_AUTO_WORKERS, available_cpus, worker_count

    root = str(tmp_path)
    assert worker_count({"WEB_CONCURRENCY": "3"}, root) == 3
    with pytest.raises(ValueError):
        worker_count({"WEB_CONCURRENCY": "0"}, root)
    pinned = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a 1.5-CPU limit (cgroup v2): two workers
    assert available_cpus(root) == min(2, pinned)
    assert worker_count({}, root) == worker_count({"WEB_CONCURRENCY": "auto"}, root) == min(2, pinned)
    (tmp_path / "cpu.max").write_text("max 100000\n")  # no limit: the CPUs it may run on, a few at most
    assert available_cpus(root) == pinned
    assert worker_count({}, root) == min(pinned, UNLIMITED_AUTO_WORKERS) <= MAX_AUTO_WORKERS
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")  # cgroup v1, half a CPU: one worker
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(root) == 1 and worker_count({}, root) == 1


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
def test_workers_do_not_outlive_a_killed_server(serve) -> None:  # type: ignore[no-untyped-def]
    process, _ = serve(workers="2", drain=0.2)
    workers = _children(process.pid)
    assert len(workers) == 2
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # do not leave them behind even when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers kept serving after their server was killed"
