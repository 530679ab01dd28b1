"""Benchmark: how many concurrent tutor turns one `chat` replica carries when the model takes 2 s.

    python bench/bench_chat_capacity.py [--levels 10,50,100,200] [--rounds 3] [--llm-delay 2.0]
                                        [--database-url postgresql://postgres@127.0.0.1:5432/aiteacher_tutor]
                                        [--keep-database] [--json]

Setup, all on 127.0.0.1 (bench/rag_env.py): PostgreSQL (the given database is dropped and re-created, then
migrated and seeded), a private Valkey, moto S3, the embedded vector store; a 4-page lecture PDF ingested
through `ingest` and RQ; 20 placed students. `LLM_PROVIDER=openai` against tests/fakes/openai_server.py run
in its own process, answering every chat completion after exactly `--llm-delay` seconds (moderation at once).
Every other setting is the default: the pool (5 + 5), the search cache, the answer cache (never hit here: a
new session every turn), the retrieval executor.

The one replica: the `chat` function's app alone under uvicorn (one process, one event loop), as its image
runs it. The load: a separate process with N concurrent clients (httpx, asyncio), each sending `--rounds`
turns one after the other (new session, 8 grounded questions in turn), so N * rounds turns per level. A
thread of that process polls `pg_stat_activity` for the database every 20 ms: peak connections and peak
connections `idle in transaction`, and of those, the peak idle in transaction for more than 250 ms (a
transaction held across a wait: before the three-phase turn, every turn in flight held one for ~2 s; a
short read or write transaction shows up as idle in transaction only for the microseconds between two
statements).

Reported per level: turns/s against the ideal N / delay (every turn waits `--llm-delay` on the model, so N
clients can at best finish N / delay turns per second), the ratio, p50/p99 latency, errors, the peaks. Goal:
ratio >= 0.9 at every level and 0 connections idle in transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import percentile, print_table  # noqa: E402

GOAL = 0.9
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/aiteacher_tutor"
STUDENTS = 20
QUESTIONS = [
    "What happens in open addressing when a bucket is taken?",
    "What is the load factor of a hash table?",
    "How does separate chaining handle collisions?",
    "What does a hash function do with a key?",
    "Why does linear probing cause primary clustering?",
    "When does a hash table double its size and rehash its keys?",
    "What is a collision in a hash table?",
    "What makes a good hash function for a table?",
]

FAKE_SERVER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from http.server import ThreadingHTTPServer
ThreadingHTTPServer.request_queue_size = 1024  # the default listen backlog (5) drops bursts of connects
from tests.fakes.openai_server import FakeOpenAIServer, FakeResponse, chat_completion
delay = float(sys.argv[1])
def chat(request):
    if "BENCH_TRACE" in __import__("os").environ:
        print("chat", time.time(), request.body["response_format"]["json_schema"]["name"], file=sys.stderr, flush=True)
    schema = request.body["response_format"]["json_schema"]
    if schema["name"] == "tutor_answer":
        ids = schema["schema"]["properties"]["citations"]["items"]["enum"]
        payload = {{"answer": f"Think about what the lecture says about buckets [{{ids[0]}}]. What happens next?",
                   "citations": [ids[0]]}}
    else:
        payload = {{"topics": ["hash tables"], "misconceptions": [], "next_steps": []}}
    return FakeResponse(200, chat_completion(json.dumps(payload)), delay=delay)
fake = FakeOpenAIServer().start()
fake.handlers["chat"] = chat
print(fake.url, flush=True)
try:
    sys.stdin.read()
finally:
    fake.stop()
"""


# --- the load process ----------------------------------------------------------------------------
def load_main(args: argparse.Namespace) -> None:
    """Run in a subprocess: N concurrent clients, and the pg_stat_activity poller."""
    import httpx
    import psycopg2

    tokens = json.loads(os.environ["BENCH_TOKENS"])
    database = args.database_url.rsplit("/", 1)[1]
    peaks = {"connections": 0, "idle_in_transaction": 0, "held_idle_in_transaction": 0}
    stop = threading.Event()

    def poll() -> None:
        connection = psycopg2.connect(args.database_url.rsplit("/", 1)[0] + "/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'idle in transaction'), "
                    "count(*) FILTER (WHERE state = 'idle in transaction' AND "
                    "now() - state_change > interval '250 milliseconds') "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
                total, idle, held = cursor.fetchone()
                peaks["connections"] = max(peaks["connections"], total)
                peaks["idle_in_transaction"] = max(peaks["idle_in_transaction"], idle)
                peaks["held_idle_in_transaction"] = max(peaks["held_idle_in_transaction"], held)
                stop.wait(0.02)
        connection.close()

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        errors: list[str] = []
        limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
        async with httpx.AsyncClient(base_url=args.url, timeout=120, limits=limits, trust_env=False) as http:

            async def client(index: int) -> None:
                headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
                for turn in range(args.rounds):
                    question = QUESTIONS[(index + turn) % len(QUESTIONS)]
                    started = time.perf_counter()
                    try:
                        response = await http.post("/", json={"message": question}, headers=headers)
                        if response.status_code != 200 or response.json().get("refused"):
                            errors.append(f"{response.status_code} {response.text[:200]}")
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(client(index) for index in range(args.clients)))
            elapsed = time.perf_counter() - began
        return {"elapsed": elapsed, "latencies": latencies, "errors": errors}

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(0.1)
    result = asyncio.run(run())
    stop.set()
    poller.join(timeout=5)
    print(json.dumps({**result, **peaks}))


# --- the bench -----------------------------------------------------------------------------------
def recreate_database(url: str) -> None:
    import psycopg2

    base, name = url.rsplit("/", 1)
    connection = psycopg2.connect(base + "/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def _trace_phases() -> dict[str, list[float]]:
    """BENCH_TRACE=1: milliseconds spent in each phase of a turn (p50/p99 printed to stderr per level)."""
    import functools

    from aiteacher.tutor import service

    sink: dict[str, list[float]] = {}

    def record(name: str, began: float) -> None:
        sink.setdefault(name, []).append((time.perf_counter() - began) * 1000)

    for name in ("prepare_turn", "record_turn"):
        original = getattr(service, name)

        def timed(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                record(_name, began)

        setattr(service, name, functools.wraps(original)(timed))
    for name in ("_retrieve", "answer_turn", "_plan"):
        original = getattr(service, name)

        async def timed_async(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await _original(*args, **kwargs)
            finally:
                record(_name, began)

        setattr(service, name, functools.wraps(original)(timed_async))
    return sink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="10,50,100,200")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llm-delay", type=float, default=2.0)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--keep-database", action="store_true", help="do not drop and re-create it first")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        load_main(args)
        return 0

    repo = BENCH.parent
    if not args.keep_database:
        recreate_database(args.database_url)
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_SERVER.format(repo=str(repo)), str(args.llm_delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        fake_url = fake.stdout.readline().strip()  # type: ignore[union-attr]
        return _run(args, fake_url)
    finally:
        fake.stdin.close()  # type: ignore[union-attr]
        fake.wait(timeout=20)


def _run(args: argparse.Namespace, fake_url: str) -> int:
    import uvicorn
    from bench_tutor import LECTURE
    from rag_env import HIGH_LIMITS, RagEnv, text_pdf_builder

    limits = {**HIGH_LIMITS, "chat": "1000000/60"}
    env_vars = {
        "DATABASE_URL": args.database_url,
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_MAX_RETRIES": "0",
        "EMBEDDING_PROVIDER": "local",
        "RATE_LIMITS": json.dumps(limits),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    rows, report = [], []
    with RagEnv(extra_env=env_vars, prefix="bench-chat-capacity-") as env:
        env.upload(text_pdf_builder()(LECTURE, title="Hash tables"), "hash-tables.pdf")
        env.run_jobs()
        students = [env.new_user("student", env.faculties[0], 1) for _ in range(STUDENTS)]
        from aiteacher_devtools.stack import functions, load_app

        app = load_app(next(spec for spec in functions() if spec.name == "chat"))
        phases = _trace_phases() if os.environ.get("BENCH_TRACE") else None

        from rag_env import free_port

        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=2048)
        )
        thread = threading.Thread(target=server.run, name="chat-replica", daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        child_env = {**os.environ, "BENCH_TOKENS": json.dumps([s.token for s in students])}
        try:
            # Warm-up (not reported): first requests import the model client, load the embedder, fill pools.
            levels = [(4, False)] + [(int(level), True) for level in args.levels.split(",")]
            for clients, reported in levels:
                if reported and os.environ.get("BENCH_PROFILE"):  # a developer's aid: yappi, not a dependency
                    import yappi

                    yappi.set_clock_type("cpu")
                    yappi.start()
                cpu_before = time.process_time()
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--load",
                        "--url",
                        url,
                        "--clients",
                        str(clients),
                        "--rounds",
                        str(args.rounds),
                        "--database-url",
                        args.database_url,
                    ],
                    env=child_env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=900,
                )
                cpu = time.process_time() - cpu_before  # this process is the replica (load and model elsewhere)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                if not reported:
                    continue
                if phases is not None:
                    print(
                        {
                            name: (len(v), round(percentile(v, 0.5), 1), round(percentile(v, 0.99), 1))
                            for name, v in phases.items()
                        },
                        file=sys.stderr,
                    )
                    phases.clear()
                turns = len(result["latencies"])
                rate = turns / result["elapsed"]
                ideal = clients / args.llm_delay
                latencies = result["latencies"]
                entry = {
                    "clients": clients,
                    "turns": turns,
                    "turns_per_s": round(rate, 2),
                    "ideal": ideal,
                    "ratio": round(rate / ideal, 3),
                    "p50_s": round(percentile(latencies, 0.5), 3),
                    "p99_s": round(percentile(latencies, 0.99), 3),
                    "errors": len(result["errors"]),
                    "peak_connections": result["connections"],
                    "peak_idle_in_transaction": result["idle_in_transaction"],
                    "peak_idle_in_transaction_over_250ms": result["held_idle_in_transaction"],
                    "replica_cpu_ms_per_turn": round(1000 * cpu / max(turns, 1), 2),
                    "first_error": result["errors"][0] if result["errors"] else None,
                }
                report.append(entry)
                rows.append(
                    [
                        clients,
                        turns,
                        f"{rate:.1f}",
                        f"{ideal:g}",
                        f"{rate / ideal:.2f}",
                        f"{entry['p50_s']:.2f}",
                        f"{entry['p99_s']:.2f}",
                        entry["errors"],
                        entry["peak_connections"],
                        entry["peak_idle_in_transaction"],
                        entry["peak_idle_in_transaction_over_250ms"],
                        entry["replica_cpu_ms_per_turn"],
                    ]
                )
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            if os.environ.get("BENCH_PROFILE"):
                import yappi

                yappi.stop()
                yappi.get_func_stats().sort("tsub").print_all(
                    out=sys.stderr, columns={0: ("name", 80), 1: ("ncall", 8), 2: ("tsub", 8), 3: ("ttot", 8)}
                )
    print_table(
        [
            "clients",
            "turns",
            "turns/s",
            "ideal",
            "ratio",
            "p50 s",
            "p99 s",
            "errors",
            "peak conns",
            "peak idle in tx",
            "of them > 250 ms",
            "replica CPU ms/turn",
        ],
        rows,
    )
    met = all(r["ratio"] >= GOAL and r["peak_idle_in_transaction_over_250ms"] == 0 and not r["errors"] for r in report)
    print(
        f"goal: ratio >= {GOAL} at every level, no connection idle in transaction across the {args.llm_delay:g} s "
        f"model wait (none idle in transaction > 250 ms), no errors: {'met' if met else 'NOT met'}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "bench": "chat_capacity",
                    "llm_delay_s": args.llm_delay,
                    "rounds": args.rounds,
                    "levels": report,
                    "goal_met": met,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
