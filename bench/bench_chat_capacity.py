"""Benchmark: how many concurrent tutor turns one `chat` replica carries when the model takes 2 s.

    python bench/bench_chat_capacity.py [--levels 10,50,100,200] [--rounds 3] [--llm-delay 2.0] [--workers N]
                                        [--database-url postgresql://postgres@127.0.0.1:5432/aiteacher_tutor]
                                        [--keep-database] [--in-process] [--ramp SECONDS] [--json]

Setup, all on 127.0.0.1 (bench/rag_env.py): PostgreSQL (the given database is dropped and re-created, then
migrated and seeded), a private Valkey, moto S3, the embedded vector store; a 4-page lecture PDF ingested
through `ingest` and RQ; 20 placed students. `LLM_PROVIDER=openai` against tests/fakes/openai_server.py run
in its own process, answering every chat completion after exactly `--llm-delay` seconds (moderation at once).
Every other setting is the default: the pool (5 + 5 per worker), the search cache, the answer cache (never
used here: a new session every turn), the retrieval executor. The bench's eight questions are searched once
before the run, so every turn finds its retrieval in the (default, 10-minute) search cache, as repeated course
questions do; an uncached search adds the query embedding and the vector search (bench_search.py).

The one replica: the `chat` function under its image's command, `python -m aiteacher.serve handler:app` in
functions/chat, with its default worker count (`WEB_CONCURRENCY` unset: the CPUs it may use, at most 2 without
a CPU limit; `--workers` sets it). `--in-process` serves the app with uvicorn in a thread of this process
instead, for `BENCH_PROFILE=1` (yappi, per-package CPU) and `BENCH_TRACE=1` (phase timings). The load: a
separate process with N concurrent clients (plain asyncio HTTP/1.1, one keep-alive connection each, so the
load costs well under 1 ms of CPU a turn), each sending `--rounds` turns one after the other (new session, 8
grounded questions in turn), so N * rounds turns per level. A thread of that process polls
`pg_stat_activity` for the database every 20 ms: peak connections and peak connections `idle in
transaction`, and of those, the peak idle in transaction for more than 250 ms (a transaction held across a
wait: before the three-phase turn, every turn in flight held one for ~2 s; a short read or write transaction
shows up as idle in transaction only for the microseconds between two statements).

Reported per level: turns/s against the ideal N / delay (every turn waits `--llm-delay` on the model, so N
clients can at best finish N / delay turns per second; with `--ramp R` the clients start spread over R
seconds, as real traffic arrives, and the ideal counts the last one's later start), the ratio, p50/p99
latency, the p50 of each round (every client's first turn, second turn, ...: the clients start together,
and the rounds show how long that burst takes to spread out), errors, the peaks, and
CPU milliseconds per turn: of the replica's processes, of the load process, of the fake model (JSON only), and
of the whole machine (everything running, other work included) with how many of its cores were busy. On a
shared machine the ratio measures the machine; CPU per turn is the steadier figure, and CPU per turn "in
anchors" (divided by `common.cpu_anchor_ms`, a fixed Python workload timed at the start of the run) compares
across machines of different speed. Goal: ratio >= 0.9 at
every level, no errors and 0 connections idle in transaction (> 250 ms).

"ceiling" is the best ratio any scheduling of the replica could reach with the CPU per turn it measured (with
two rounds or more and no ramp; `ceiling()`): the model answers the whole first burst no earlier than `delay`
after it started, so all N first-round replies and all N second-round requests are worked on after that moment,
by at most min(workers, cores) processes, and the last of them reaches the model only then, with two more
model waits ahead of it if the rounds are three. A ratio close to its ceiling is a scheduling that wastes
nothing; a ceiling below the goal means the goal needs less CPU per turn on this machine, whatever the order.
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

from common import cpu_anchor_ms, percentile, print_table  # noqa: E402

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


def ceiling(rounds: int, delay: float, clients: int, cpu_ms_per_turn: float, parallel: int) -> float | None:
    """The best ratio a replica spending `cpu_ms_per_turn` on each turn, in `parallel` processes, can reach when
    `clients` start together and each makes `rounds` turns against a model answering in exactly `delay` s.

    Every first-round reply comes back at `delay` or later, and every client's second request follows its first
    reply, so N replies and N requests, one turn's work per client, all run after `delay`: the last second-round
    request reaches the model at `delay + N * cpu / parallel` at the earliest, and then waits `rounds - 1` more
    times. So the run lasts at least `rounds * delay + N * cpu / parallel`, and the ratio is the ideal
    `rounds * delay` over that. (A single round has no such second burst: None.)"""
    if rounds < 2:
        return None
    window = clients * cpu_ms_per_turn / 1000 / max(parallel, 1)
    return rounds * delay / (rounds * delay + window)


# --- the load process ----------------------------------------------------------------------------
def load_main(args: argparse.Namespace) -> None:
    """Run in a subprocess: N concurrent clients, and the pg_stat_activity poller."""
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

    host, port = args.url.removeprefix("http://").rstrip("/").split(":")

    async def post(
        connection: list[Any], path: str, body: bytes, headers: bytes
    ) -> tuple[int, bytes]:  # one keep-alive HTTP/1.1 connection per client: the load must cost little CPU
        if not connection:
            connection.extend(await asyncio.open_connection(host, int(port)))
        reader, writer = connection
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: application/json"
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + headers + b"\r\n" + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        fields = {name.strip().lower(): value.strip() for name, value in fields.items()}
        if fields.get(b"transfer-encoding") == b"chunked":
            payload = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                payload += (await reader.readexactly(size + 2))[:size]
                if size == 0:
                    break
        else:
            payload = await reader.readexactly(int(fields.get(b"content-length", b"0")))
        if fields.get(b"connection") == b"close":
            writer.close()
            connection.clear()
        return status, payload

    async def run() -> dict[str, Any]:
        by_round: list[list[float]] = [[] for _ in range(args.rounds)]
        errors: list[str] = []

        async def client(index: int) -> None:
            headers = f"Authorization: Bearer {tokens[index % len(tokens)]}\r\n".encode()
            connection: list[Any] = []
            if args.ramp:  # client i starts at i / N of the ramp: arrivals spread out, as real traffic comes
                await asyncio.sleep(args.ramp * index / args.clients)
            for turn in range(args.rounds):
                question = QUESTIONS[(index + turn) % len(QUESTIONS)]
                started = time.perf_counter()
                try:
                    status, payload = await asyncio.wait_for(
                        post(connection, "/", json.dumps({"message": question}).encode(), headers), 120
                    )
                    if status != 200 or json.loads(payload).get("refused"):
                        errors.append(f"{status} {payload[:200].decode(errors='replace')}")
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    errors.append(repr(exc))
                    if connection:
                        connection[1].close()
                        connection.clear()
                by_round[turn].append(time.perf_counter() - started)
            if connection:
                connection[1].close()

        began = time.perf_counter()
        await asyncio.gather(*(client(index) for index in range(args.clients)))
        elapsed = time.perf_counter() - began
        return {"elapsed": elapsed, "by_round": by_round, "errors": errors}

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(0.1)
    import resource

    result = asyncio.run(run())
    stop.set()
    poller.join(timeout=5)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**result, **peaks, "client_cpu_s": usage.ru_utime + usage.ru_stime}))


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
    from aiteacher.llm.openai_provider import OpenAIProvider

    for name in ("moderate_async", "tutor_answer_async"):
        original = getattr(OpenAIProvider, name)

        async def timed_method(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await _original(*args, **kwargs)
            finally:
                record(_name, began)

        setattr(OpenAIProvider, name, functools.wraps(original)(timed_method))
    return sink


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU of a process and all its descendants alive now (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return sum(cpu.get(pid, 0.0) for pid in members)


def _system_cpu_seconds() -> float:
    """CPU time all processes of the machine used (busy jiffies of /proc/stat), in seconds."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _package(module: str) -> str:
    """A profiled function's file as a package (site-packages/<pkg>) or our module, for the CPU breakdown."""
    if "/shared/aiteacher/" in module:
        return "aiteacher/" + module.split("/shared/aiteacher/", 1)[1]
    if "site-packages/" in module:
        rest = module.split("site-packages/", 1)[1]
        parts = rest.split("/")
        return parts[0] if parts[0] != "aiteacher" else "/".join(parts[:2])
    if "/lib/python3" in module:
        return "stdlib:" + module.rsplit("/lib/python3", 1)[1].split("/", 1)[-1].split("/")[0]
    return module.rsplit("/", 2)[-2] + "/" + module.rsplit("/", 1)[-1] if "/" in module else module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="10,50,100,200")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llm-delay", type=float, default=2.0)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--keep-database", action="store_true", help="do not drop and re-create it first")
    parser.add_argument(
        "--workers",
        default="",
        help="WEB_CONCURRENCY for the replica (default: unset, so its own default: the CPUs it may use)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve the app with uvicorn in this process instead (for BENCH_PROFILE / BENCH_TRACE)",
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        help="seconds over which the clients start (default 0: all at once, the goal's burst)",
    )
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
        return _run(args, fake_url, fake.pid)
    finally:
        fake.stdin.close()  # type: ignore[union-attr]
        fake.wait(timeout=20)


def _run(args: argparse.Namespace, fake_url: str, fake_pid: int) -> int:
    from bench_tutor import LECTURE
    from rag_env import HIGH_LIMITS, RagEnv, free_port, text_pdf_builder

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
    anchor_ms = cpu_anchor_ms()  # before anything else runs: the machine's speed for this run's figures
    with RagEnv(extra_env=env_vars, prefix="bench-chat-capacity-") as env:
        env.upload(text_pdf_builder()(LECTURE, title="Hash tables"), "hash-tables.pdf")
        env.run_jobs()
        students = [env.new_user("student", env.faculties[0], 1) for _ in range(STUDENTS)]
        _warm_search_cache(students[0].token)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        replica = _start_replica(args, port)
        child_env = {**os.environ, "BENCH_TOKENS": json.dumps([s.token for s in students])}
        phases = _trace_phases() if args.in_process and os.environ.get("BENCH_TRACE") else None
        try:
            # Warm-up (not reported): the first requests of each worker import the model client and fill its pools;
            # enough connections that the kernel hands every worker some.
            levels = [(16 * replica.workers, False)] + [(int(level), True) for level in args.levels.split(",")]
            for clients, reported in levels:
                if reported and args.in_process and os.environ.get("BENCH_PROFILE"):  # yappi: not a dependency
                    import yappi

                    yappi.set_clock_type("cpu")
                    yappi.start()
                replica_before, fake_before, system_before = replica.cpu(), _tree_cpu_seconds(fake_pid), _system_cpu()
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
                        "--ramp",
                        str(args.ramp),
                        "--database-url",
                        args.database_url,
                    ],
                    env=child_env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=900,
                )
                replica_cpu = replica.cpu() - replica_before
                fake_cpu = _tree_cpu_seconds(fake_pid) - fake_before
                system_after = _system_cpu()
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
                latencies = [latency for round_ in result["by_round"] for latency in round_]
                turns = len(latencies)
                rate = turns / result["elapsed"]
                # N clients finish at best N / delay turns a second; with a ramp, the last starts `ramp` later.
                ideal = turns / (args.rounds * args.llm_delay + args.ramp * (clients - 1) / clients)

                def per_turn(seconds: float, turns: int = turns) -> float:
                    return round(1000 * seconds / max(turns, 1), 2)

                replica_ms = per_turn(replica_cpu)
                parallel = min(replica.workers, os.cpu_count() or 1)
                bound = None if args.ramp else ceiling(args.rounds, args.llm_delay, clients, replica_ms, parallel)
                entry = {
                    "clients": clients,
                    "turns": turns,
                    "turns_per_s": round(rate, 2),
                    "ideal": ideal,
                    "ratio": round(rate / ideal, 3),
                    "ceiling": round(bound, 3) if bound is not None else None,
                    "p50_s": round(percentile(latencies, 0.5), 3),
                    "p99_s": round(percentile(latencies, 0.99), 3),
                    # The first round starts as one burst (every client at once); the later ones come spread out.
                    "p50_by_round_s": [round(percentile(r, 0.5), 3) for r in result["by_round"] if r],
                    "errors": len(result["errors"]),
                    "peak_connections": result["connections"],
                    "peak_idle_in_transaction": result["idle_in_transaction"],
                    "peak_idle_in_transaction_over_250ms": result["held_idle_in_transaction"],
                    "replica_workers": replica.workers,
                    "replica_cpu_ms_per_turn": replica_ms,
                    "replica_cpu_per_turn_in_anchors": round(replica_ms / anchor_ms, 3),
                    "client_cpu_ms_per_turn": per_turn(result["client_cpu_s"]),
                    "fake_llm_cpu_ms_per_turn": per_turn(fake_cpu),
                    "system_cpu_ms_per_turn": per_turn(system_after[0] - system_before[0]),
                    "machine_cores": os.cpu_count(),
                    "machine_cores_busy": round(
                        (system_after[0] - system_before[0]) / max(system_after[1] - system_before[1], 1e-9), 2
                    ),
                    "load_average": round(os.getloadavg()[0], 2),
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
                        f"{bound:.2f}" if bound is not None else "-",
                        f"{entry['p50_s']:.2f}",
                        f"{entry['p99_s']:.2f}",
                        "/".join(f"{value:.2f}" for value in entry["p50_by_round_s"]),
                        entry["errors"],
                        entry["peak_connections"],
                        entry["peak_idle_in_transaction"],
                        entry["peak_idle_in_transaction_over_250ms"],
                        entry["replica_cpu_ms_per_turn"],
                        entry["replica_cpu_per_turn_in_anchors"],
                        entry["client_cpu_ms_per_turn"],
                        entry["system_cpu_ms_per_turn"],
                        entry["machine_cores_busy"],
                    ]
                )
        finally:
            replica.stop()
            if args.in_process and os.environ.get("BENCH_PROFILE"):
                _print_profile()
    print_table(
        [
            "clients",
            "turns",
            "turns/s",
            "ideal",
            "ratio",
            "ceiling",
            "p50 s",
            "p99 s",
            "p50 s by round",
            "errors",
            "peak conns",
            "peak idle in tx",
            "of them > 250 ms",
            "replica CPU ms/turn",
            "in anchors",
            "client CPU ms/turn",
            "system CPU ms/turn",
            "cores busy",
        ],
        rows,
    )
    print(
        f"replica: {replica.description}; CPU ms/turn: the replica's processes; client: the load process; "
        "system: every process on the machine (PostgreSQL, the fake model and anything else running)"
    )
    print(
        f"machine anchor: {anchor_ms:.1f} ms of CPU for a fixed Python workload (bench/common.py cpu_anchor_ms); "
        "'in anchors' = replica CPU per turn / anchor, comparable across machines of different speed"
    )
    print(
        "ceiling: the best ratio any order of work could reach with the replica's CPU per turn, its workers "
        "and this machine's cores (bench docstring, ceiling())"
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
                    "ramp_s": args.ramp,
                    "cpu_anchor_ms": round(anchor_ms, 2),
                    "replica": replica.description,
                    "levels": report,
                    "goal_met": met,
                }
            )
        )
    return 0


def _system_cpu() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, wall seconds) now."""
    return _system_cpu_seconds(), time.monotonic()


def _warm_search_cache(token: str) -> None:
    """Run the bench's questions through search once here, where ingestion left the embedded vector store
    open, with the scope and top_k a turn uses: every turn of the replica then finds its search results in
    the (default, 10-minute) search cache, as repeated course questions do. Then this process lets go of the
    store, so a single-worker replica could open it on a miss (Qdrant Edge belongs to one process; production
    replicas use the Qdrant server)."""
    from aiteacher.config import get_settings, reset_caches
    from aiteacher.curriculum.search import caller_scope, search
    from aiteacher.db import transaction
    from aiteacher.security.tokens import decode

    claims = decode(token, "access")
    with transaction() as session:
        scope = caller_scope(session, claims)
    for question in QUESTIONS:
        search(scope, question, get_settings().tutor_top_k)
    reset_caches()


class _Replica:
    """The `chat` function as its image runs it (`python -m aiteacher.serve handler:app` in functions/chat),
    or, with --in-process, its app under uvicorn in a thread of this process (for yappi and phase traces)."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.server: Any = None
        self.thread: threading.Thread | None = None
        if args.in_process:
            import uvicorn

            from aiteacher_devtools.stack import functions, load_app

            app = load_app(next(spec for spec in functions() if spec.name == "chat"))
            self.server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=2048)
            )
            self.thread = threading.Thread(target=self.server.run, name="chat-replica", daemon=True)
            self.thread.start()
            while not self.server.started:
                time.sleep(0.05)
            self.workers = 1
            self.description = "the chat app under uvicorn in the bench process (--in-process), 1 worker"
            return
        env = {**os.environ, "FUNCTION_NAME": "chat", "LOG_LEVEL": "warning"}
        if args.workers:
            env["WEB_CONCURRENCY"] = args.workers
        try:
            from aiteacher.serve import worker_count
        except ImportError:  # a checkout from before WEB_CONCURRENCY: one worker
            self.workers = 1
        else:
            self.workers = worker_count(env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiteacher.serve", "handler:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=BENCH.parent / "functions" / "chat",
            env=env,
            stdout=subprocess.DEVNULL,  # the audit log (one JSON line a turn, as in production)
            text=True,
        )
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the chat replica exited with {self.process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the chat replica did not become ready within 60 s")
            time.sleep(0.1)
        self.description = (
            f"python -m aiteacher.serve handler:app (functions/chat), {self.workers} worker(s)"
            f"{' (WEB_CONCURRENCY=' + args.workers + ')' if args.workers else ' (the default)'}"
        )

    def cpu(self) -> float:
        if self.process is not None:
            return _tree_cpu_seconds(self.process.pid)
        return time.process_time()  # in-process: this process is the replica (load and model run elsewhere)

    def stop(self) -> None:
        if self.process is not None:
            import signal

            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.server is not None:
            self.server.should_exit = True
            assert self.thread is not None
            self.thread.join(timeout=10)


def _start_replica(args: argparse.Namespace, port: int) -> _Replica:
    return _Replica(args, port)


def _print_profile() -> None:
    import yappi

    yappi.stop()
    stats = yappi.get_func_stats()
    by_package: dict[str, float] = {}
    for stat in stats:
        by_package[_package(stat.module)] = by_package.get(_package(stat.module), 0.0) + stat.tsub
    total = sum(by_package.values()) or 1.0
    for name, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:30]:
        print(f"{name:60} {seconds:8.3f} s {100 * seconds / total:5.1f} %", file=sys.stderr)
    stats.sort("tsub").print_all(
        out=sys.stderr, columns={0: ("name", 80), 1: ("ncall", 8), 2: ("tsub", 8), 3: ("ttot", 8)}
    )


if __name__ == "__main__":
    raise SystemExit(main())
