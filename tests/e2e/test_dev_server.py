"""`aiteacher dev` (what `make dev` runs) as a newcomer uses it: a real process on real ports with
the embedded services. The README's flow works, a PDF dropped into the bucket becomes searchable for
the right students only, and a second process refuses the embedded stores it does not own."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import PASSWORD, make_pdf

REPO = Path(__file__).resolve().parents[2]
ADMIN = ("admin@example.edu", "admin password")  # the README's first admin


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dev_env(data_dir: Path, gateway_port: int, s3_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "S3_ENDPOINT_URL",
            "EVENTS_TOKEN",
            "EVENTS_QUEUE_URL",
            "JWT_SECRET",
            "AITEACHER_ENV",
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
        )
    }
    env.update(
        DATA_DIR=str(data_dir),
        GATEWAY_PORT=str(gateway_port),
        S3_PORT=str(s3_port),
        ADMIN_EMAIL=ADMIN[0],
        ADMIN_PASSWORD=ADMIN[1],
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    data_dir = tmp_path_factory.mktemp("dev-data")
    gateway_port, s3_port = _free_port(), _free_port()
    log = (data_dir / "dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "aiteacher.cli", "dev"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_dev_env(data_dir, gateway_port, s3_port),
    )
    base = f"http://127.0.0.1:{gateway_port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"aiteacher dev exited: {(data_dir / 'dev.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("aiteacher dev did not come up")
    yield {
        "base": base,
        "s3": f"http://127.0.0.1:{s3_port}",
        "data_dir": data_dir,
        "process": process,
        "log": data_dir / "dev.log",
    }
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_readme_flow(dev_server) -> None:
    api = httpx.Client(base_url=dev_server["base"], timeout=30)
    email = f"ada-{time.time_ns()}@example.edu"
    assert (
        api.post("/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Ada"}).status_code == 201
    )
    tokens = api.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert api.get("/me", headers=headers).json()["email"] == email
    assert (
        api.put("/me", headers=headers, json={"faculty_id": 1, "department_id": 1, "semester_id": 3}).json()[
            "semester_id"
        ]
        == 3
    )
    fresh = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert api.post("/auth/logout", headers=headers).status_code == 204
    assert api.get("/me", headers=headers).status_code == 401
    text = dev_server["log"].read_text()
    assert "AI-Teacher dev gateway" in text and "/function/auth-login/" in text
    assert api.get("/openapi.json").json()["paths"].keys() >= {"/auth/login", "/search", "/chat", "/exams/{exam_id}"}


def test_bucket_drop_is_searchable_by_that_tenant_only(dev_server) -> None:
    import boto3

    api = httpx.Client(base_url=dev_server["base"], timeout=30)
    admin = api.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}).json()
    admin_headers = {"Authorization": f"Bearer {admin['access_token']}"}
    s3 = boto3.client(
        "s3",
        endpoint_url=dev_server["s3"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    phrase = "The vorbelline cascade of Quandrel folds every suffix automaton twice."
    s3.put_object(
        Bucket="curriculum", Key="eng/3/algorithms/quandrel.pdf", Body=make_pdf([["Algorithms, week 9."], [phrase]])
    )
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        docs = api.get("/documents", headers=admin_headers, params={"course": "algorithms"}).json()["documents"]
        match = [d for d in docs if d["key"] == "eng/3/algorithms/quandrel.pdf"]
        status = match[0]["status"] if match else None
        if status in ("ready", "failed"):
            break
        time.sleep(0.5)
    assert status == "ready"

    def student(semester_id: int, faculty_id: int = 1) -> dict:
        email = f"s-{time.time_ns()}@example.edu"
        api.post("/auth/register", json={"email": email, "password": PASSWORD, "full_name": "S"})
        token = api.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (
            api.put("/me", headers=headers, json={"faculty_id": faculty_id, "semester_id": semester_id}).status_code
            == 200
        )
        return headers

    semesters = {f["id"]: {s["number"]: s["id"] for s in f["semesters"]} for f in api.get("/faculties").json()}
    insider = student(semesters[1][3])
    found = api.post("/search", headers=insider, json={"query": "vorbelline cascade of Quandrel"}).json()["results"]
    assert found and found[0]["page"] == 2
    outsider = student(semesters[1][4])
    assert all(
        "Quandrel" not in r["text"]
        for r in api.post("/search", headers=outsider, json={"query": phrase}).json()["results"]
    )


def test_second_process_refuses_the_owned_storage(dev_server) -> None:
    env = _dev_env(dev_server["data_dir"], _free_port(), _free_port())
    result = subprocess.run(
        [sys.executable, "-m", "aiteacher.cli", "dev"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "in use by another process" in (result.stdout + result.stderr)
    assert dev_server["process"].poll() is None, "the owner keeps running"


def test_worker_threads_are_alive_and_rq_imported_once(dev_server) -> None:
    text = dev_server["log"].read_text()
    assert "partially initialized module" not in text
    assert "worker rq-worker" not in text, text[-3000:]


def _dev_with_taken_port(tmp_path: Path, which: str) -> tuple[subprocess.CompletedProcess, int]:
    gateway_port, s3_port = _free_port(), _free_port()
    taken = gateway_port if which == "gateway" else s3_port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen(1)
        result = subprocess.run(
            [sys.executable, "-m", "aiteacher.cli", "dev"],
            cwd=REPO,
            env=_dev_env(tmp_path / "data", gateway_port, s3_port),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return result, taken


def test_dev_exits_with_a_clear_error_when_the_s3_port_is_taken(tmp_path: Path) -> None:
    result, port = _dev_with_taken_port(tmp_path, "s3")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in output and "S3_PORT" in output
    assert "AI-Teacher dev gateway" not in output


def test_dev_prints_no_banner_when_the_gateway_port_is_taken(tmp_path: Path) -> None:
    result, port = _dev_with_taken_port(tmp_path, "gateway")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in output and "GATEWAY_PORT" in output
    assert "AI-Teacher dev gateway" not in output


def _readme_shell_blocks() -> str:
    text = (REPO / "README.md").read_text()
    walkthrough = text[text.index("## Try it") : text.index("Without an API key the tutor")]
    return "\n".join(re.findall(r"```sh\n(.*?)```", walkthrough, re.S))


def test_readme_shell_blocks_run_as_pasted(dev_server, tmp_path: Path) -> None:
    """The README's curl walk-through, pasted into bash at the repository root: it used to log out the
    token the next block uses, and `<exam_id>` was a shell error."""
    script = _readme_shell_blocks()
    code = [line.split("  #")[0] for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if re.search(r"<[a-z_ ]+>", line)], "a <placeholder> is a shell error"
    script = script.replace("http://127.0.0.1:8080", dev_server["base"]).replace(
        "http://127.0.0.1:9000", dev_server["s3"]
    )
    for name in (".venv", "tests"):  # the repository root as the reader's shell sees it, lecture.pdf kept out
        (tmp_path / name).symlink_to(REPO / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-e", "-u", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "curl:" not in output and "Traceback" not in output and "syntax error" not in output
    assert "204\n401\n" in result.stdout  # the second session is logged out ...
    assert '"results"' in result.stdout and '"answer"' in result.stdout  # ... $ACCESS still works after it
    assert '"questions"' in result.stdout or '"status"' in result.stdout.rsplit("\n", 2)[-2]
