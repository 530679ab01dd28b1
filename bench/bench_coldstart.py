"""Benchmark: cold start of every function of stack.yml against a bare FastAPI hello app.

    python bench/bench_coldstart.py [--rounds 5] [--only NAME ...] [--json]

A cold start here is what a scale-from-zero replica pays once its container runs: from spawning the
server process to the first 200 on GET /_/health. Both sides run the template's own fprocess
(template/aiteacher-fastapi/template.yml: `uvicorn handler:app --host 127.0.0.1 --workers 1 ...`) from a
folder holding a `handler.py`, exactly as of-watchdog starts it in the image: the function's folder for a
function, a temporary folder with a bare FastAPI app (one JSON route and /_/health) for the anchor.
The first request of a function also builds its settings and middleware stack, which counts: that is what
the first caller waits for.

Each round starts the anchor and every function once, a fresh process each time, in alternating order
(forward, then reversed: ABBA), after one uncounted warm-up start of each (bytecode on disk, as in the
image, where it is compiled at build time). Medians are compared; goal: function <= 1.2x the anchor. The
ratio of the fastest starts is printed too: on a shared machine it is the steadier of the two.
Everything is local: no server is touched by a health check; the process gets a production-strength
JWT secret and a temporary DATA_DIR. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import HEALTH_PATH, HOST, REPO, free_port, median, print_table

GOAL = 1.2
TEMPLATE = REPO / "template" / "aiteacher-fastapi" / "template.yml"
HELLO = """from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/_/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
"""


def fprocess(port: int) -> list[str]:
    argv = yaml.safe_load(TEMPLATE.read_text())["fprocess"].split(" ")
    argv[argv.index("--port") + 1] = str(port)
    return [sys.executable, "-m", *argv]  # `uvicorn ...` -> `python -m uvicorn ...` with this venv's Python


def cold_start(folder: Path, env: dict[str, str], timeout: float = 60.0) -> float:
    """Seconds from spawning the server to the first 200 on /_/health."""
    port = free_port()
    began = time.perf_counter()
    process = subprocess.Popen(fprocess(port), cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{folder.name}: server exited: {process.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - began > timeout:
                raise RuntimeError(f"{folder.name}: no 200 on {HEALTH_PATH} within {timeout:.0f} s")
            try:
                connection = http.client.HTTPConnection(HOST, port, timeout=10)
                connection.request("GET", HEALTH_PATH)
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return time.perf_counter() - began
                raise RuntimeError(f"{folder.name}: {HEALTH_PATH} answered {status}")
            except (ConnectionRefusedError, ConnectionResetError):
                time.sleep(0.002)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted starts per app (>= 3)")
    parser.add_argument("--only", nargs="*", default=None, help="function names (default: all of stack.yml)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    rounds = max(3, args.rounds)

    sys.path.insert(0, str(REPO / "shared"))
    from aiteacher_devtools.stack import functions

    specs = [spec for spec in functions() if args.only is None or spec.name in args.only]
    scratch = Path(tempfile.mkdtemp(prefix="aiteacher-coldstart-"))
    hello_dir = scratch / "hello"
    hello_dir.mkdir()
    (hello_dir / "handler.py").write_text(HELLO)
    base_env = {
        **os.environ,
        "AITEACHER_ENV": "production",
        "DATA_DIR": str(scratch / "data"),
        "JWT_SECRET": "bench-secret-that-is-long-enough-for-hs256-0123456789",
        "SECRETS_DIR": str(scratch / "no-secrets"),
    }
    targets: dict[str, tuple[Path, dict[str, str]]] = {"hello (anchor)": (hello_dir, base_env)}
    for spec in specs:
        targets[spec.name] = (spec.handler_dir, {**base_env, "FUNCTION_NAME": spec.name})

    for folder, env in targets.values():  # warm-up: bytecode on disk, page cache warm
        cold_start(folder, env)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    for index in range(rounds):
        for name in order if index % 2 == 0 else reversed(order):
            folder, env = targets[name]
            samples[name].append(cold_start(folder, env))

    anchor = median(samples["hello (anchor)"])
    anchor_min = min(samples["hello (anchor)"])
    rows, results = [], {}
    extras = {spec.name: spec.extras for spec in specs}
    for name, values in samples.items():
        ratio = median(values) / anchor
        results[name] = {
            "median_ms": round(median(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "ratio": round(ratio, 3),
            "min_ratio": round(min(values) / anchor_min, 3),
        }
        verdict = "anchor" if name == "hello (anchor)" else ("ok" if ratio <= GOAL else "over goal")
        rows.append(
            [
                name,
                extras.get(name, "-"),
                f"{median(values) * 1000:.0f}",
                f"{min(values) * 1000:.0f}",
                f"{ratio:.2f}x",
                f"{min(values) / anchor_min:.2f}x",
                verdict,
            ]
        )
    worst = max((r["ratio"] for n, r in results.items() if n != "hello (anchor)"), default=0.0)
    if not args.json:
        print(f"cold start: process spawn -> first 200 on {HEALTH_PATH}; {rounds} rounds, medians; goal <= {GOAL}x")
        print_table(["app", "extras", "median ms", "min ms", "ratio", "min ratio", "verdict"], rows)
        print()
    print(
        json.dumps(
            {
                "benchmark": "coldstart",
                "rounds": rounds,
                "goal": GOAL,
                "anchor_ms": round(anchor * 1000, 1),
                "worst_ratio": worst,
                "meets_goal": worst <= GOAL,
                "results": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
