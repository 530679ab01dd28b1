"""Functions tested as they ship: one venv per distinct EXTRAS set of stack.yml, production settings.

For every distinct `build_args.EXTRAS` of stack.yml (and the worker image's), a venv gets the shared
library wheel with exactly those extras (uv and its cache; pinned by shared/requirements.lock),
like the template's Dockerfile. Then, against this machine's PostgreSQL and Redis:

- the migrate Job (`aiteacher migrate`) runs with the Job's environment and secret files;
- every function starts under uvicorn as the image starts it (`handler:app`, from its folder, nothing of
  the repository on sys.path), with exactly the environment stack.yml gives it (environment_file +
  environment) and test values in the secret files it lists, in production mode;
- it must become ready (/_/health), and every route of its OpenAPI answers without a Bearer header, with
  a malformed one and with a valid token: never a 500 (503 for a backing service that is not here is fine);
- the worker (`aiteacher worker`) registers with Redis and exits 0 on SIGTERM.

Cluster host names in env/common.yml (redis.<ns>.svc.cluster.local, ...) are the only values rewritten:
to this machine's services (Redis, PostgreSQL, a moto S3) or, for Qdrant, to a closed local port.

    python .ci/ship_check.py [--redis-db 12] [--database aiteacher_ship] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT / "devtools")]

from aiteacher_devtools import images, manifests  # noqa: E402

JWT_SECRET = "ship-check-jwt-secret-0123456789abcdef0123456789abcdef"
EVENTS_TOKEN = "ship-check-events-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, seconds: float, process: subprocess.Popen | None = None) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return -process.returncode if process.returncode else -1
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.1)
    return 0


def request(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, str, str]:
    req = urllib.request.Request(url, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return (
                response.status,
                response.headers.get("content-type", ""),
                response.read(300).decode("utf-8", "replace"),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read(300).decode("utf-8", "replace")


def build_venvs(extras_sets: set[str], cache: Path) -> dict[str, Path]:
    lock = ROOT / "shared" / "requirements.lock"
    venvs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="ship-wheel-") as folder:  # the venvs keep what they installed
        wheel = images.build_wheel(ROOT, Path(folder))
        for extras in sorted(extras_sets):
            digest = hashlib.sha256((extras + wheel.name).encode()).hexdigest()[:12]
            started = time.monotonic()
            venvs[extras] = images.install_set(wheel, extras, cache / f"venv-{digest}", lock)
            print(f"  venv [{extras or '-'}] {time.monotonic() - started:.1f}s", flush=True)
    return venvs


class Backing:
    """This machine's PostgreSQL (a fresh database) and Redis (one db, flushed), plus a moto S3."""

    def __init__(self, database: str, redis_db: int):
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{database}"')
        conn.close()
        self.database_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
        self.redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        from redis import Redis

        Redis.from_url(self.redis_url).flushdb()
        self.s3_port = free_port()
        self.moto = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.qdrant_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: Qdrant is not on this machine

    def rewrite(self, env: dict[str, str]) -> dict[str, str]:
        out = dict(env)
        for key, value in env.items():
            if ".svc.cluster.local" not in value:
                continue
            out[key] = {
                "REDIS_URL": self.redis_url,
                "QDRANT_URL": self.qdrant_url,
                "S3_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_port}",
            }.get(key, value)
        return out

    def secrets(self, names: list[str], folder: Path) -> Path:
        values = {
            "jwt-secret": JWT_SECRET,
            "database-url": self.database_url,
            "events-token": EVENTS_TOKEN,
            "s3-access-key-id": "ship-check",
            "s3-secret-access-key": "ship-check-s3-secret-not-committed",
            "admin-email": "ship-admin@example.edu",
            "admin-password": "ship check admin password",
        }
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name in manifests.OPTIONAL_SECRETS:
                continue  # optional: the function must run without it
            (folder / name).write_text(values[name])
        return folder

    def stop(self) -> None:
        self.moto.terminate()
        self.moto.wait(timeout=10)


def base_env(env: dict[str, str], secrets_dir: Path, data_dir: Path) -> dict[str, str]:
    """The container's environment: the image's fixed ENV, then stack.yml's, nothing from this shell."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATA_DIR": str(data_dir),
        "SECRETS_DIR": str(secrets_dir),
        "AITEACHER_ALEMBIC_INI": str(ROOT / "alembic.ini"),
        "healthcheck_interval": "1s",  # the image says 5s: the drain after SIGTERM, shortened here
        **env,
    }


def token(role: str = "student") -> str:
    """An access token as auth-login issues it (signed with the test jwt-secret), for a user id no one has."""
    os.environ.update(JWT_SECRET=JWT_SECRET, AITEACHER_ENV="production")
    from aiteacher.config import reset_caches
    from aiteacher.security.tokens import issue

    reset_caches()
    return issue("access", sub="999999", role=role, family="ship-check", ttl_seconds=600)[0]


def probe_routes(name: str, base: str) -> list[str]:
    problems: list[str] = []
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as response:
        spec = json.load(response)
    headers_variants = {
        "no bearer": {},
        "malformed bearer": {"Authorization": "Bearer not-a-jwt"},
        "valid bearer": {"Authorization": f"Bearer {token()}"},
    }
    if name == manifests.OBJECT_CREATED_FUNCTION:
        headers_variants["events token"] = {"Authorization": f"Bearer {EVENTS_TOKEN}"}
    checked = 0
    for path, operations in spec.get("paths", {}).items():
        url_path = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            if method.upper() not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                continue
            for label, headers in headers_variants.items():
                body = b"{}" if method.upper() in ("POST", "PUT", "PATCH") else None
                sent = {**headers, **({"Content-Type": "application/json"} if body else {})}
                status, content_type, text = request(method.upper(), base + url_path, sent, body)
                checked += 1
                if status >= 500 and status not in (502, 503, 504):
                    problems.append(f"{name}: {method.upper()} {url_path} ({label}) -> {status} {text[:200]}")
                elif status >= 400 and "problem+json" not in content_type:
                    problems.append(f"{name}: {method.upper()} {url_path} ({label}) -> {status} not problem+json")
    if not checked:
        problems.append(f"{name}: no routes in its OpenAPI")
    return problems


def run_function(stack: manifests.Stack, spec, venv: Path, backing: Backing, work: Path) -> list[str]:  # type: ignore[no-untyped-def]
    env = backing.rewrite(stack.environment(spec))
    secrets_dir = backing.secrets(list(spec.secrets), work / spec.name / "secrets")
    data_dir = work / spec.name / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = work / spec.name / "log.txt"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(venv / "bin" / "python"),
                "-m",
                "aiteacher.serve",
                "handler:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=spec.handler_dir,
            env=base_env(env, secrets_dir, data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    try:
        status = wait_http(f"{base}/_/health", 60, process)
        if status != 200:
            problems.append(f"{spec.name}: not ready (health {status})")
        else:
            problems += probe_routes(spec.name, base)
    finally:
        process.send_signal(signal.SIGTERM)  # drains (healthcheck_interval) and exits 0
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
    if code != 0:
        problems.append(f"{spec.name}: exit {code} after SIGTERM (expected a drained exit 0)")
    if problems:
        problems.append(f"{spec.name} log: {log_path.read_text()[-1500:]}")
    return problems


def run_migrate(stack: manifests.Stack, venv: Path, backing: Backing, work: Path) -> list[str]:
    job = manifests.migrate_job(stack)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = backing.rewrite({item["name"]: item["value"] for item in container["env"]})
    names = [s["secret"]["name"] for s in job["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]]
    secrets_dir = backing.secrets(names, work / "migrate" / "secrets")
    data_dir = work / "migrate" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(venv / "bin" / container["command"][0]), *container["command"][1:]],
        cwd=data_dir,
        env=base_env(env, secrets_dir, data_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return [f"migrate Job exited {result.returncode}: {(result.stdout + result.stderr)[-2000:]}"]
    return []


def run_worker(stack: manifests.Stack, venv: Path, backing: Backing, work: Path) -> list[str]:
    from redis import Redis

    deployment = manifests.worker_manifests(stack)[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = backing.rewrite({item["name"]: item["value"] for item in container["env"]})
    metrics_port = free_port()
    env["WORKER_METRICS_PORT"] = str(metrics_port)  # the pod's 9100, moved off whatever uses it here
    names = [s["secret"]["name"] for s in pod["volumes"][0]["projected"]["sources"]]
    secrets_dir = backing.secrets(names, work / "worker" / "secrets")
    data_dir = work / "worker" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = work / "worker" / "log.txt"
    redis = Redis.from_url(backing.redis_url)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / container["command"][0]), *container["command"][1:]],
            cwd=data_dir,
            env=base_env(env, secrets_dir, data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not redis.scard("rq:workers") and process.poll() is None:
            time.sleep(0.2)
        if not redis.scard("rq:workers"):
            return [f"worker never registered (exit {process.poll()}): {log_path.read_text()[-2000:]}"]
        status = wait_http(f"http://127.0.0.1:{metrics_port}/metrics", 10)
        if status != 200:
            return [f"worker: no metrics on WORKER_METRICS_PORT (status {status})"]
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        if code != 0:
            return [f"worker exited {code} on SIGTERM: {log_path.read_text()[-2000:]}"]
        return []
    finally:
        if process.poll() is None:
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("SHIP_REDIS_DB", "12")))
    parser.add_argument("--database", default=os.environ.get("SHIP_DATABASE", "aiteacher_ship"))
    parser.add_argument("--only", default="", help="comma-separated function names (default: all)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aiteacher-ship")
    args = parser.parse_args()
    stack = manifests.load(ROOT)
    only = {name for name in args.only.split(",") if name}
    specs = [spec for spec in stack.specs if not only or spec.name in only]
    extras_sets = {images.normalized(spec.extras) for spec in specs} | {images.normalized(manifests.WORKER_EXTRAS)}
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"== ship check: {len(specs)} functions, {len(extras_sets)} distinct EXTRAS sets", flush=True)
    venvs = build_venvs(extras_sets, args.cache)
    backing = Backing(args.database, args.redis_db)
    work = Path(tempfile.mkdtemp(prefix="ship-run-"))
    problems: list[str] = []
    try:
        worker_venv = venvs[images.normalized(manifests.WORKER_EXTRAS)]
        problems += run_migrate(stack, worker_venv, backing, work)
        print(f"  migrate Job: {'ok' if not problems else 'FAILED'}", flush=True)
        for spec in specs:
            extras = images.normalized(spec.extras)
            found = run_function(stack, spec, venvs[extras], backing, work)
            print(f"  {spec.name:<15} [{extras}]: {'ok' if not found else 'FAILED'}", flush=True)
            problems += found
        found = run_worker(stack, worker_venv, backing, work)
        print(f"  worker: {'ok' if not found else 'FAILED'}", flush=True)
        problems += found
    finally:
        backing.stop()
    for problem in problems:
        print(problem, file=sys.stderr)
    total = len(specs) + 2
    failed = len({p.split(":")[0] for p in problems if " log:" not in p})
    print(f"ship check: {total - failed} passed, {failed} failed ({time.monotonic() - started:.0f}s)")
    if not problems:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
