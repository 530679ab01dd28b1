"""Shared helpers for the benchmarks: a uvicorn server in a subprocess, a bounded HTTP load loop,
alternating anchor/subject rounds, percentiles and a small table printer.

Every benchmark prints a ratio against an anchor measured in the same run, because machines are noisy:
rounds of the anchor and of the subject alternate (ABBA order, so a slow drift of the machine hits both
sides alike) and the medians are compared.

The server side is also runnable by hand:

    python bench/common.py serve --app hello --port 8123         # the bare FastAPI hello app (the anchor)
    python bench/common.py serve --app fn:auth-login --port 8124  # one function of stack.yml, alone
    python bench/common.py serve --app layer:auth --port 8125     # create_app + CurrentUser, hello route
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
HOST = "127.0.0.1"
HEALTH_PATH = "/_/health"  # aiteacher.web.HEALTH_PATH; the hello app serves it too


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def alternate(rounds: int, runners: Mapping[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run every runner once per round, in ABBA order (reversed every other round); collect the results."""
    names = list(runners)
    results: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            results[name].append(runners[name]())
    return results


def cpu_anchor_ms(repeats: int = 7) -> float:
    """The machine's speed for single-threaded Python, in ms of CPU: the median of `repeats` runs of a fixed
    workload shaped like a request's (JSON encode and decode, dict and string work). A benchmark whose goal is
    absolute (turns against a fixed model delay) reports its CPU per unit of work in multiples of this, so
    runs on machines of different speed compare."""
    import json

    document = {"id": "s" * 32, "items": [{"name": f"item {i}", "score": i / 7, "tags": ["a", "b"]} for i in range(40)]}
    runs = []
    for _ in range(repeats):
        began = time.process_time()
        for _ in range(200):
            decoded = json.loads(json.dumps(document))
            " ".join(item["name"].upper() for item in decoded["items"])
        runs.append((time.process_time() - began) * 1000)
    return statistics.median(runs)


def verdict(ratio: float, goal: float, *, at_least: bool = True) -> bool:
    return ratio >= goal if at_least else ratio <= goal


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(header)), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    print("  ".join(str(header).ljust(width) for header, width in zip(headers, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


# --- servers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def hello_app() -> Any:
    """The anchor: a bare FastAPI app, one sync GET route returning a small JSON (like the functions' routes,
    which are plain `def` handlers run in the threadpool). No middleware, no dependencies."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get(HEALTH_PATH)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def layer_app(layer: str) -> Any:
    """The `me` function peeled into layers, to attribute its cost (bench_identity.py --explain):
    `base` is `aiteacher.web.create_app` (middlewares, error handlers, the per-caller rate-limit dependency)
    with a hello route; `auth` adds the `CurrentUser` dependency (JWT verify + Redis deny-list check)."""
    from fastapi import Depends

    from aiteacher.web import create_app, current_user

    app = create_app("me", f"bench layer {layer}")
    if layer == "base":

        @app.get("/")
        def hello() -> dict[str, str]:
            return {"hello": "world"}
    elif layer == "auth":

        @app.get("/")
        def whoami(caller: Any = Depends(current_user)) -> dict[str, str]:  # aiteacher.web.CurrentUser
            return {"sub": caller.sub}
    else:
        raise SystemExit(f"unknown layer {layer!r}: use base or auth")
    return app


def _load_target(target: str) -> Any:
    if target == "hello":
        return hello_app()
    if target.startswith("layer:"):
        return layer_app(target.removeprefix("layer:"))
    if target.startswith("fn:"):
        from aiteacher_devtools.stack import functions, load_app

        name = target.removeprefix("fn:")
        for spec in functions():
            if spec.name == name:
                return load_app(spec)
        raise SystemExit(f"no function {name!r} in stack.yml")
    raise SystemExit(f"unknown app {target!r}: use hello, fn:<function name>, layer:base or layer:auth")


def serve(target: str, port: int) -> None:
    """uvicorn, one worker, one process, no access log: the same settings for the subject and the anchor."""
    import uvicorn

    uvicorn.run(_load_target(target), host=HOST, port=port, workers=1, log_level="warning", access_log=False)


@dataclass
class Server:
    """`python bench/common.py serve --app <target>` in a subprocess on a free port; a context manager."""

    target: str
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    startup_timeout: float = 60.0
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> Server:
        self.port = free_port()
        env = {**os.environ, **self.env}
        log_dir = self.log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"server-{self.target.replace(':', '-')}-{self.port}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, str(BENCH_DIR / "common.py"), "serve", "--app", self.target, "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server {self.target} exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", HEALTH_PATH)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server {self.target} not ready after {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux /proc), or None."""
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def load_module(relative_path: str, name: str) -> Any:
    """A repository file (tests/fixtures/make_pdfs.py, tests/fakes/openai_server.py) loaded by path: the
    tests are not imported as a package by the benchmarks."""
    import importlib.util

    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


# --- timing wrappers ------------------------------------------------------------------------------


class Timings:
    """Wraps module functions and object methods; records milliseconds per name into `sink` (swapped by the
    caller between steps; one step at a time, so nothing overlaps). `remove()` restores the originals."""

    def __init__(self) -> None:
        self.sink: dict[str, list[float]] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.sink.setdefault(name, []).append((time.perf_counter() - began) * 1000)

        own = isinstance(owner, type) or attribute in getattr(owner, "__dict__", {})
        setattr(owner, attribute, timed)
        self._undo.append((lambda: setattr(owner, attribute, original)) if own else (lambda: delattr(owner, attribute)))

    def total(self, name: str) -> float:
        return sum(self.sink.get(name, []))

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()


# --- load -----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    first_error: str | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def run_load(
    port: int,
    method: str,
    path: str,
    *,
    threads: int,
    requests_per_thread: int,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    expected_status: int = 200,
) -> LoadResult:
    """`threads` client threads, each on its own keep-alive connection (http.client: the lightest client in
    the standard library, so the client's share of the 2 cores stays small), each sending exactly
    `requests_per_thread` requests back to back. Wall time runs from a common start to the last reply."""
    request_headers = {"Connection": "keep-alive", **(headers or {})}
    if body is not None:
        request_headers.setdefault("Content-Type", "application/json")
    start = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    first_error: list[str] = []

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            conn.connect()
        finally:
            start.wait()
        mine = latencies[index]
        try:
            for _ in range(requests_per_thread):
                began = time.perf_counter()
                conn.request(method, path, body=body, headers=request_headers)
                response = conn.getresponse()
                data = response.read()
                mine.append((time.perf_counter() - began) * 1000)
                if response.status != expected_status:
                    errors[index] += 1
                    if not first_error:
                        first_error.append(f"{response.status}: {data[:300].decode(errors='replace')}")
        except Exception as exc:
            errors[index] += requests_per_thread - len(mine)
            if not first_error:
                first_error.append(repr(exc))
        finally:
            conn.close()

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    seconds = time.perf_counter() - began
    flat = [value for per_thread in latencies for value in per_thread]
    return LoadResult(len(flat), seconds, flat, sum(errors), first_error[0] if first_error else None)


def run_threads(threads: int, per_thread: int, work: Callable[[], object]) -> float:
    """Operations per second of `work` called `per_thread` times on each of `threads` threads."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(per_thread):
            work()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    return threads * per_thread / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve one app for the benchmarks (uvicorn, one worker).")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument(
        "--app", required=True, help="'hello', 'fn:<function in stack.yml>', 'layer:base' or 'layer:auth'"
    )
    serve_parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.app, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
