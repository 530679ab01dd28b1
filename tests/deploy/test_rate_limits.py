"""Per-function rate limits live in stack.yml, next to their function (#9 item 5): the dev gateway reads
them from there, the generated deployment files carry them (RATE_LIMIT in each function's environment),
and RATE_LIMITS still overrides them all (tests and benchmarks)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from aiteacher_devtools import manifests
from aiteacher_devtools.gateway import Gateway
from aiteacher_devtools.stack import FunctionSpec, load_app, load_stack

REPO = Path(__file__).resolve().parents[2]
FUNCTION = "faculties"  # public, answers 200 (with its RateLimit-* headers) to anyone


def committed_limit(function: str) -> str:
    document = yaml.safe_load((REPO / "stack.yml").read_text())
    return str(document["functions"][function]["environment"].get("RATE_LIMIT", ""))


def stack_with_limit(root: Path, function: str, limit: str) -> Path:
    """A copy of stack.yml (env/, shared/ and functions/ linked) in which `function` has RATE_LIMIT `limit`."""
    text = (REPO / "stack.yml").read_text()
    block = re.search(rf"(?ms)^  {re.escape(function)}:\n.*?(?=^  \S|\Z)", text)
    assert block is not None
    body = re.sub(r"\n      RATE_LIMIT: .*", "", block.group(0))
    body = body.replace(
        f"      FUNCTION_NAME: {function}\n", f'      FUNCTION_NAME: {function}\n      RATE_LIMIT: "{limit}"\n'
    )
    (root / "stack.yml").write_text(text.replace(block.group(0), body))
    for name in ("env", "shared", "functions"):
        (root / name).symlink_to(REPO / name)
    return root


def spec_of(stack_file: Path, function: str) -> FunctionSpec:
    return next(spec for spec in load_stack(stack_file)[1] if spec.name == function)


@pytest.fixture
def one_function() -> Iterator[None]:
    """The apps are shared by the session's gateway: give the function its committed limit back."""
    yield
    load_app(spec_of(REPO / "stack.yml", FUNCTION))


def calls(gateway: Gateway, count: int, address: str) -> list[tuple[int, str]]:
    """(status, RateLimit-Limit) of `count` GET /faculties from one client address."""
    with TestClient(gateway, headers={"X-Forwarded-For": address}) as client:
        replies = [client.get("/faculties") for _ in range(count)]
    return [(reply.status_code, reply.headers.get("ratelimit-limit", "")) for reply in replies]


def test_the_gateway_takes_each_function_s_limit_from_stack_yml(tmp_path: Path, one_function: None) -> None:
    assert committed_limit(FUNCTION) != "3/60"
    changed = spec_of(stack_with_limit(tmp_path, FUNCTION, "3/60") / "stack.yml", FUNCTION)
    statuses = calls(Gateway([changed]), 4, "10.250.0.1")
    assert statuses[:3] == [(200, "3")] * 3 and statuses[3][0] == 429, statuses

    # The committed stack.yml again: its limit (none for this function, so the default).
    [(status, limit)] = calls(Gateway([spec_of(REPO / "stack.yml", FUNCTION)]), 1, "10.250.0.2")
    assert (status, limit) == (200, (committed_limit(FUNCTION) or "120").split("/")[0])


def test_rate_limits_overrides_stack_yml(tmp_path: Path, one_function: None, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aiteacher.config import reset_caches

    changed = spec_of(stack_with_limit(tmp_path, FUNCTION, "3/60") / "stack.yml", FUNCTION)
    monkeypatch.setenv("RATE_LIMITS", json.dumps({FUNCTION: "2/60"}))
    reset_caches()
    try:
        statuses = calls(Gateway([changed]), 3, "10.250.0.3")
        assert statuses[:2] == [(200, "2")] * 2 and statuses[2][0] == 429, statuses
        monkeypatch.setenv("RATE_LIMITS", json.dumps({"someone-else": "2/60"}))  # not named: the default
        reset_caches()
        assert calls(Gateway([changed]), 1, "10.250.0.4") == [(200, "120")]
    finally:
        monkeypatch.undo()
        reset_caches()


def test_the_generated_files_carry_the_limit_of_stack_yml(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    function = "auth-login"
    stack = manifests.load(stack_with_limit(tmp_path, function, "7/3600"))
    spec = next(s for s in stack.specs if s.name == function)
    unlimited = next(s for s in stack.specs if not s.rate_limit)

    knative = manifests.knative_service(stack, spec)
    env = {item["name"]: item["value"] for item in knative["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RATE_LIMIT"] == "7/3600"
    other = manifests.knative_service(stack, unlimited)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "RATE_LIMIT" not in {item["name"] for item in other}

    compose = yaml.safe_load(manifests.compose(stack))
    assert compose["services"][function]["environment"]["RATE_LIMIT"] == "7/3600"
    pro = yaml.safe_load(manifests.pro_stack(stack))
    assert pro["functions"][function]["environment"]["RATE_LIMIT"] == "7/3600"
    [plan] = [entry for entry in manifests.lambda_plan(stack) if entry["name"] == function]
    assert plan["environment"]["RATE_LIMIT"] == "7/3600"

    # The function, alone in its process with that environment, applies it.
    from aiteacher.config import Settings

    monkeypatch.delenv("RATE_LIMITS", raising=False)
    monkeypatch.setenv("RATE_LIMIT", env["RATE_LIMIT"])
    assert Settings().rate_limit_for(function) == (7, 3600)


def test_the_committed_files_carry_the_committed_limits() -> None:
    generated = manifests.generate(manifests.load(REPO))
    compose = yaml.safe_load(generated["docker-compose.yml"])
    for spec in manifests.load(REPO).specs:
        knative = yaml.safe_load(generated[f"infra/knative/{spec.name}.yaml"])
        env = {item["name"]: item["value"] for item in knative["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env.get("RATE_LIMIT", "") == spec.rate_limit == committed_limit(spec.name), spec.name
        assert compose["services"][spec.name]["environment"].get("RATE_LIMIT", "") == spec.rate_limit, spec.name


def test_limits_are_checked_and_an_empty_override_is_none(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from aiteacher.config import Settings

    monkeypatch.setenv("RATE_LIMITS", "")  # as .env.example writes it: no override
    monkeypatch.setenv("RATE_LIMIT", "5/10")
    settings = Settings()
    assert settings.rate_limits is None and settings.rate_limit_for("any") == (5, 10)
    assert settings.rate_limit_for("any", "") == (settings.rate_limit_requests, settings.rate_limit_window_seconds)
    monkeypatch.setenv("RATE_LIMIT", "thirty a minute")
    with pytest.raises(ValidationError, match="rate_limit"):
        Settings()
    monkeypatch.setenv("RATE_LIMIT", "")
    monkeypatch.setenv("RATE_LIMITS", json.dumps({"chat": "lots"}))
    with pytest.raises(ValidationError, match="requests/seconds"):
        Settings()
