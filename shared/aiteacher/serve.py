"""The function image's server (`python -m aiteacher.serve handler:app`): uvicorn behind of-watchdog.

What plain uvicorn gets wrong under of-watchdog:

- **SIGTERM.** The watchdog forwards SIGTERM to its child at once, keeps routing new requests to it for
  `healthcheck_interval`, then drains in-flight requests for up to `write_timeout`. Plain uvicorn closes its
  socket at once (new requests: the watchdog answers 500), then re-raises SIGTERM on itself, so the watchdog
  sees its child killed and exits 1. Here SIGTERM starts a drain: readiness fails, new requests get
  503 + Retry-After, in-flight requests finish, and the process exits 0 once nothing is in flight and
  the watchdog has stopped routing to it.
- **Timeouts.** At `exec_timeout` the watchdog cuts the request. The app answers first, a problem+json
  504 a moment before that deadline, so the client learns what happened. The deadline covers the time to
  the first byte only: a streamed reply (Server-Sent Events) keeps streaming.
- **Cores.** One event loop uses one core. A replica (one container) runs `WEB_CONCURRENCY` worker processes
  on one port (each on its own `SO_REUSEPORT` socket), by default one per CPU of the container's CPU limit (at
  most `MAX_AUTO_WORKERS`). The app is imported once, then the workers are forked; each has its own event loop
  and its own pools (so `DB_POOL_SIZE` is per worker). Without a CPU limit the default is the CPUs it may run
  on, at most `UNLIMITED_AUTO_WORKERS`. SIGTERM is passed to every worker, each drains as above, and the
  process exits 0 once all have; a worker that dies on its own stops the others and the process exits 1, so
  the watchdog (and the orchestrator) restart it.
  `/_/metrics` reports the sum over the workers (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("aiteacher.serve")
HEALTH_PATHS = ("/_/health", "/_/ready")
METRICS_PATH = "/_/metrics"
RETRY_AFTER_SECONDS = 5
DEADLINE_MARGIN_SECONDS = 2.0
MAX_AUTO_WORKERS = 8
UNLIMITED_AUTO_WORKERS = 2

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def go_duration(value: str | None) -> float | None:
    """A Go duration as of-watchdog reads it ("60s", "1m30s", "500ms", bare seconds); None when unset/0."""
    import re

    if not value or not value.strip():
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        seconds = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value))
    return seconds or None


def app_deadline(environ: MutableMapping[str, str] | None = None) -> float | None:
    """Seconds the app gives a request before it answers 504: a little under the watchdog's exec_timeout."""
    env = os.environ if environ is None else environ
    explicit = go_duration(env.get("APP_TIMEOUT"))
    if explicit:
        return explicit
    exec_timeout = go_duration(env.get("exec_timeout"))
    if not exec_timeout:
        return None
    return max(exec_timeout - DEADLINE_MARGIN_SECONDS, exec_timeout * 0.5)


def cpu_limit(cgroup_root: str = "/sys/fs/cgroup") -> float | None:
    """The container's CPU limit (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None when it has none."""
    from pathlib import Path

    root = Path(cgroup_root)
    with contextlib.suppress(OSError, ValueError):
        limit, period = (root / "cpu.max").read_text().split()[:2]
        return int(limit) / int(period) if limit != "max" and int(period) > 0 else None
    with contextlib.suppress(OSError, ValueError):
        limit_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return limit_us / period_us if limit_us > 0 and period_us > 0 else None
    return None


def available_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: its container's CPU limit rounded up, at most the CPUs it is pinned to
    (`os.cpu_count()` alone reports the host's)."""
    import math

    try:
        pinned = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pinned = os.cpu_count() or 1
    limit = cpu_limit(cgroup_root)
    return max(1, min(pinned, math.ceil(limit)) if limit else pinned)


def worker_count(environ: MutableMapping[str, str] | None = None, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """`WEB_CONCURRENCY` (a positive number, or `auto`, the default). `auto`: the container's CPU limit (at most
    MAX_AUTO_WORKERS); without a limit, the CPUs it may run on but at most UNLIMITED_AUTO_WORKERS: a pod that
    only *requests* a little CPU on a big node must not fork a worker (memory, database connections) per
    node core."""
    env = os.environ if environ is None else environ
    value = (env.get("WEB_CONCURRENCY") or "auto").strip().lower()
    if value == "auto":
        cap = MAX_AUTO_WORKERS if cpu_limit(cgroup_root) else UNLIMITED_AUTO_WORKERS
        return min(available_cpus(cgroup_root), cap)
    count = int(value)
    if count < 1:
        raise ValueError(f"WEB_CONCURRENCY must be a positive number or 'auto', not {value!r}")
    return count


def _problem(status: int, title: str, detail: str, code: str, headers: dict[str, str]) -> tuple[dict, bytes]:
    body = json.dumps(
        {
            "type": f"https://aiteacher.dev/problems/{code.replace('_', '-')}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    return {"content-type": "application/problem+json", "content-length": str(len(body)), **headers}, body


async def _send_problem(
    send: Send, status: int, title: str, detail: str, code: str, headers: dict[str, str] | None = None
) -> None:
    head, body = _problem(status, title, detail, code, headers or {})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in head.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ShippedApp:
    """ASGI wrapper: counts requests in flight, refuses new ones while draining, answers 504 at the deadline."""

    def __init__(self, app: Any, deadline_seconds: float | None, function_name: str = ""):
        self.app = app
        self.deadline_seconds = deadline_seconds
        self.draining = False
        self.in_flight = 0
        self.function_name = function_name or os.environ.get("FUNCTION_NAME", "")
        self.gate: Any = None
        if getattr(getattr(app, "state", None), "oldest_first", False):
            from aiteacher.config import get_settings

            slots = get_settings().oldest_first_slots
            if slots:
                from aiteacher.scheduling import OldestFirst

                self.gate = OldestFirst(slots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == METRICS_PATH:
            await self._metrics(scope, send)
            return
        if self.draining:
            await _send_problem(
                send,
                503,
                "Shutting down",
                "This replica is shutting down; retry shortly",
                "shutting_down",
                {"retry-after": str(RETRY_AFTER_SECONDS), "connection": "close"},
            )
            return
        self.in_flight += 1
        status = {"code": 500}
        started = time.perf_counter()

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            if self.gate is None or path in HEALTH_PATHS:
                await self._serve(scope, receive, counted_send)
            else:
                await self._serve_oldest_first(scope, receive, counted_send)
        finally:
            self.in_flight -= 1
            if path not in HEALTH_PATHS:
                self._observe(scope, status["code"], time.perf_counter() - started)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.deadline_seconds is None or scope.get("path", "") in HEALTH_PATHS:
            await self.app(scope, receive, send)
        else:
            await self._with_deadline(scope, receive, send)

    async def _serve_oldest_first(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request runs holding a slot of the gate; waiting on its client (a body still arriving, a slow
        reader) it lets the slot go, as it does around its own network waits (`aiteacher.scheduling`)."""
        from aiteacher.scheduling import SHORT_WAIT, off_cpu

        async def gated_receive() -> Message:
            async with off_cpu(SHORT_WAIT):
                return await receive()

        async def gated_send(message: Message) -> None:
            async with off_cpu(SHORT_WAIT):
                await send(message)

        assert self.gate is not None
        async with self.gate.admitted():
            await self._serve(scope, gated_receive, gated_send)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        from aiteacher import observability as obs

        route = getattr(scope.get("route"), "path", None) or "unmatched"  # templates only: bounded labels
        method = scope.get("method", "")
        obs.HTTP_REQUESTS.labels(self.function_name, method, route, str(status)).inc()
        obs.HTTP_LATENCY.labels(self.function_name, method, route).observe(seconds)
        if status == 429:
            obs.RATE_LIMITED.labels(self.function_name).inc()
        elif status == 401:
            obs.AUTH_FAILED.labels(self.function_name).inc()

    async def _metrics(self, scope: Scope, send: Send) -> None:
        """Prometheus text for a scraper on the pod network; 404 through a proxy (the gateway adds XFF)."""
        from aiteacher import observability as obs

        headers = dict(scope.get("headers") or [])
        if b"x-forwarded-for" in headers or scope.get("method") != "GET":
            await _send_problem(send, 404, "Not found", "No route here", "not_found")
            return
        body = obs.metrics_text()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", obs.METRICS_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _with_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = asyncio.Event()

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, watched_send))
        first_byte = asyncio.ensure_future(started.wait())
        done, _ = await asyncio.wait(
            {task, first_byte}, timeout=self.deadline_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done or first_byte in done:
            first_byte.cancel()
            await task  # a started reply (a stream, too) runs to its end
            return
        first_byte.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if not started.is_set():
            log.warning(
                "request %s %s passed the %gs deadline", scope.get("method"), scope.get("path"), self.deadline_seconds
            )
            await _send_problem(
                send, 504, "Timed out", f"The request took longer than {self.deadline_seconds:g}s", "timeout"
            )


def _uvicorn_server(shipped: ShippedApp, host: str, port: int, drain_seconds: float, log_level: str) -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """SIGTERM/SIGINT start a drain; exit (0) once idle and the watchdog no longer routes here."""

        _drain_started = False

        def handle_exit(self, sig: int, frame: Any) -> None:  # never re-raised: a drained exit is a clean exit
            if self._drain_started:
                if sig == signal.SIGINT:
                    self.should_exit = True
                return
            self._drain_started = True
            shipped.draining = True
            log.info("signal %s: draining (%d in flight)", signal.Signals(sig).name, shipped.in_flight)
            threading.Thread(target=self._drain, name="drain", daemon=True).start()

        def _drain(self) -> None:
            quiet_since = time.monotonic()
            begun = quiet_since
            while True:
                if shipped.in_flight:
                    quiet_since = time.monotonic()
                elif time.monotonic() - begun >= drain_seconds and time.monotonic() - quiet_since >= 0.2:
                    break
                time.sleep(0.05)
            self.should_exit = True

    from aiteacher.observability import uvicorn_log_config, with_tracing

    config = uvicorn.Config(
        with_tracing(shipped, shipped.function_name or "aiteacher"),
        host=host,
        port=port,
        workers=1,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level=log_level,
        log_config=uvicorn_log_config(),
        timeout_graceful_shutdown=30,
        lifespan="auto",
    )
    return DrainingServer(config)


def load_app(target: str) -> Any:
    import importlib
    import sys

    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), attribute or "app")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiteacher.serve", description=__doc__.splitlines()[0])
    parser.add_argument("app", nargs="?", default="handler:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info").lower())
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=None,
        help="how long to keep answering 503 after SIGTERM (default: the watchdog's healthcheck_interval, else 5s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"worker processes (default: WEB_CONCURRENCY, else the container's CPUs, at most {MAX_AUTO_WORKERS})",
    )
    args = parser.parse_args(argv)
    workers = args.workers if args.workers is not None else worker_count()
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before prometheus_client is imported: each worker's metrics go to files there, and a scrape (whichever
        # worker takes it) reports the sum. A fresh folder per start (no stale counters from an earlier run),
        # removed when the server exits.
        import tempfile

        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="aiteacher-metrics-")
    try:
        return _serve(args, workers)
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(args: argparse.Namespace, workers: int) -> int:
    from aiteacher.observability import BUILD_INFO, configure_logging

    configure_logging(args.log_level)
    BUILD_INFO.labels(os.environ.get("FUNCTION_NAME", "")).set(1)
    drain = (
        args.drain_seconds
        if args.drain_seconds is not None
        else (go_duration(os.environ.get("healthcheck_interval")) or 5.0)  # noqa: SIM112 - of-watchdog's own name
    )
    app = load_app(args.app)
    if workers == 1:
        shipped = ShippedApp(app, app_deadline())
        _uvicorn_server(shipped, args.host, args.port, drain, args.log_level).run()
        return 0
    return _run_workers(app, workers, args.host, args.port, drain, args.log_level)


def _end_with_parent(parent: int) -> None:
    """A worker whose server was killed outright (SIGKILL, the OOM killer) gets SIGTERM and drains, rather than
    serving on as an orphan nobody routes to (Linux: PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _listeners(host: str, port: int, workers: int) -> list[Any]:
    """One listening socket per worker on the same port (`SO_REUSEPORT`: the kernel spreads new connections over
    them by hash), or one shared socket where the option is missing. All are bound here, before any fork, so a
    port in use fails the server at once.

    On one shared socket the worker that wakes first accepts most of a burst (asyncio accepts up to 100
    connections per wake-up): 142 of 200 keep-alive connections landed on one of two workers in the chat capacity
    bench, and its turns queued for its one core while the other idled (docs/benchmarks.md)."""
    import socket

    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is not None:
        # Sockets with SO_REUSEPORT share a port with any other process of the same user that sets it too: a
        # second server started on a busy port would take half its connections instead of failing. A probe
        # without the option fails as a plain bind does (EADDRINUSE) while anything listens there.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]
    listeners = []
    for _ in range(workers if reuse_port is not None else 1):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port is not None:
            listener.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        listener.bind((host, port))
        listener.listen(2048)
        listener.set_inheritable(True)
        listeners.append(listener)
    return listeners


def _run_workers(app: Any, workers: int, host: str, port: int, drain: float, log_level: str) -> int:
    """Fork `workers` servers, each on its own listening socket of the port (`_listeners`); pass SIGTERM/SIGINT
    on; exit 0 once every worker has drained and exited 0, else 1."""
    listeners = _listeners(host, port, workers)
    children: dict[int, int] = {}
    parent = os.getpid()
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: its own loop, pools, drain and listening socket
            code = 1
            try:
                _end_with_parent(parent)
                own = listeners[index % len(listeners)]
                for other in listeners:
                    if other is not own:
                        other.close()
                shipped = ShippedApp(app, app_deadline())
                _uvicorn_server(shipped, host, port, drain, log_level).run(sockets=[own])
                code = 0
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index
    for listener in listeners:
        listener.close()
    log.info("serving on %s:%d with %d workers", host, port, workers)
    stopping = False

    def forward(sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.pop(pid, None)
        code = os.waitstatus_to_exitcode(wait_status)
        if code != 0 or not stopping:
            status = 1
            if not stopping:  # a worker died on its own: stop the rest, let the watchdog restart us
                log.error("worker %d exited with %d; stopping the others", pid, code)
                forward(signal.SIGTERM, None)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
