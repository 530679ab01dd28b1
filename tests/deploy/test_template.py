"""The faas-cli template (template/aiteacher-fastapi): Dockerfile shape, both build-context layouts, and
the template's fprocess actually serving every function of stack.yml from the staged layout."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aiteacher.web import HEALTH_PATH
from aiteacher_devtools import manifests
from aiteacher_devtools.stack import functions

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template" / manifests.TEMPLATE_NAME
SPECS = functions()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in (TEMPLATE / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            logical.append(current)
            current = ""
    result = []
    for entry in logical:
        keyword, _, rest = entry.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def env_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                values[key] = value
    return values


def test_template_yml_names_the_language_and_fprocess() -> None:
    template = yaml.safe_load((TEMPLATE / "template.yml").read_text())
    assert template["language"] == TEMPLATE.name
    assert template["fprocess"] == env_values()["fprocess"]
    assert template["welcome_message"].strip()
    stack = yaml.safe_load((REPO / "stack.yml").read_text())
    assert any(t.get("name") == TEMPLATE.name for t in stack["configuration"]["templates"])
    assert {"./shared", "./migrations", "./alembic.ini"} <= set(stack["configuration"]["copy"])
    assert all(spec.raw["lang"] == TEMPLATE.name for spec in SPECS)


def test_dockerfile_stages_and_pins() -> None:
    steps = instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1].strip('"') for k, rest in steps if k == "ARG" and "=" in rest}
    assert re.fullmatch(r"ghcr\.io/openfaas/of-watchdog:\d+\.\d+\.\d+", args["WATCHDOG_IMAGE"])
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    froms = [rest for k, rest in steps if k == "FROM"]
    assert froms[0] == "${WATCHDOG_IMAGE} AS watchdog"
    assert [f.split(" AS ")[1] for f in froms] == ["watchdog", "layout", "build", "ship"]  # DL3063
    assert "COPY --from=watchdog /fwatchdog /usr/bin/fwatchdog" in [f"COPY {r}" for k, r in steps if k == "COPY"]
    pip = next(rest for k, rest in steps if k == "RUN" and "uv pip install" in rest)
    assert "--constraints /build/shared/requirements.lock" in pip  # pinned, with hashes
    assert '"/build/shared[serve${EXTRAS:+,$EXTRAS}]"' in pip  # uvloop + httptools, and the function's extras
    assert any(k == "RUN" and "compileall" in rest and "unchecked-hash" in rest for k, rest in steps)
    user = [rest for k, rest in steps if k == "USER"][-1]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "numeric non-root user (Kubernetes runAsNonRoot)"
    assert ("EXPOSE", "8080") in steps
    cmd = [rest for k, rest in steps if k == "CMD"][-1]
    assert "${PORT:-8080}" in cmd and "exec fwatchdog" in cmd


def test_watchdog_runs_uvicorn_behind_it() -> None:
    env = env_values()
    assert env["mode"] == "http"
    assert env["upstream_url"] == "http://127.0.0.1:8000"
    assert env["ready_path"] == HEALTH_PATH
    argv = env["fprocess"].split(" ")  # of-watchdog splits on spaces, no shell
    # aiteacher.serve: uvicorn with one worker that drains on SIGTERM and answers 504 before exec_timeout.
    assert argv[:4] == ["python", "-m", "aiteacher.serve", "handler:app"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "8000"
    assert manifests.duration_seconds(env["write_timeout"]) > manifests.duration_seconds(env["exec_timeout"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for timeout in ("read_timeout", "write_timeout", "exec_timeout"):
        assert manifests.duration_seconds(env[timeout]) > 0


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = set((TEMPLATE / "Dockerfile.dockerignore").read_text().split())
    assert {"**/.venv", "**/__pycache__", "**/.data", "**/*.egg-info", ".git"} <= patterns


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_every_function_builds_with_declared_extras(spec) -> None:  # type: ignore[no-untyped-def]
    declared = manifests.declared_extras(REPO)
    resolved = manifests.resolve_extras(spec.extras, declared)  # raises on an unknown extra
    assert resolved <= set(declared)
    assert (spec.handler_dir / "handler.py").is_file()


# --- both build-context layouts, through prepare-context.sh ---------------------------------------


def faas_cli_build_context(tmp: Path, spec, *, copy_into_function: bool = True) -> Path:  # type: ignore[no-untyped-def]
    """What `faas-cli build` lays out (builder.createBuildContext): the template, the handler folder in
    function/, and each configuration.copy path copied to function/<path> (or, if asked, the top level)."""
    context = tmp / "build" / spec.name
    shutil.copytree(TEMPLATE, context)
    shutil.rmtree(context / "function")
    shutil.copytree(spec.handler_dir, context / "function", ignore=shutil.ignore_patterns("__pycache__"))
    stack = yaml.safe_load((REPO / "stack.yml").read_text())
    for path in stack["configuration"]["copy"]:
        source = REPO / path
        target = (context / "function" / path) if copy_into_function else (context / path)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    return context


def prepare(context: Path, stage: Path, function: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(TEMPLATE / "prepare-context.sh"), str(context), str(stage), function],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_staged(stage: Path, spec) -> None:  # type: ignore[no-untyped-def]
    assert (stage / "shared" / "pyproject.toml").is_file()
    assert (stage / "shared" / "aiteacher" / "web.py").is_file()
    assert (stage / "app" / "alembic.ini").is_file()
    assert (stage / "app" / "migrations" / "env.py").is_file()
    function = stage / "app" / "function"
    assert (function / "handler.py").read_text() == (spec.handler_dir / "handler.py").read_text()
    assert not (function / "shared").exists() and not (function / "migrations").exists()
    assert not list(stage.rglob("__pycache__")) and not list(stage.rglob("*.egg-info"))


@pytest.mark.parametrize("into_function", [True, False], ids=["copy-into-function", "copy-top-level"])
def test_faas_cli_layout(tmp_path: Path, into_function: bool) -> None:
    spec = SPECS[0]
    context = faas_cli_build_context(tmp_path, spec, copy_into_function=into_function)
    result = prepare(context, tmp_path / "stage")
    assert result.returncode == 0, result.stderr
    assert_staged(tmp_path / "stage", spec)


def test_repository_root_layout(tmp_path: Path) -> None:
    spec = SPECS[-1]
    result = prepare(REPO, tmp_path / "stage", spec.name)
    assert result.returncode == 0, result.stderr
    assert_staged(tmp_path / "stage", spec)
    worker = prepare(REPO, tmp_path / "worker-stage")  # the worker / migration image: no function
    assert worker.returncode == 0, worker.stderr
    assert list((tmp_path / "worker-stage" / "app" / "function").iterdir()) == []
    assert (tmp_path / "worker-stage" / "shared" / "pyproject.toml").is_file()


def test_missing_pieces_fail_the_build(tmp_path: Path) -> None:
    missing = prepare(REPO, tmp_path / "a", "no-such-function")
    assert missing.returncode != 0 and "no-such-function" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare(empty, tmp_path / "b").returncode != 0


# --- the fprocess serves each function from the staged layout -------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def staged_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("staged")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_fprocess_serves_the_function(spec, staged_root: Path) -> None:  # type: ignore[no-untyped-def]
    stage = staged_root / spec.name
    result = prepare(REPO, stage, spec.name)
    assert result.returncode == 0, result.stderr
    port = free_port()
    argv = env_values()["fprocess"].split(" ")
    argv[argv.index("--port") + 1] = str(port)
    argv[0:1] = [sys.executable]
    env = {
        **os.environ,
        "AITEACHER_ENV": "production",
        "FUNCTION_NAME": spec.name,
        "JWT_SECRET": "a-production-strength-secret-for-this-test-0123456789",
        "DATA_DIR": str(stage / "data"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AITEACHER_ALEMBIC_INI": str(stage / "app" / "alembic.ini"),
    }
    process = subprocess.Popen(
        argv, cwd=stage / "app" / "function", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        status, body = None, b""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", HEALTH_PATH)
                response = connection.getresponse()
                status, body = response.status, response.read()
                connection.close()
                break
            except OSError:
                time.sleep(0.05)
        assert status == 200, process.stdout.read().decode() if process.poll() is not None else status
        assert b'"function":"%s"' % spec.name.encode() in body
    finally:
        process.terminate()
        process.wait(timeout=20)
