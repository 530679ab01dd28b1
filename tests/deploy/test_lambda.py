"""Each function's AWS Lambda entry point (`handler = lambda_handler(app)`, Mangum) answers recorded
Function URL and API Gateway v2 events exactly as the function answers the same request over HTTP."""

from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from aiteacher_devtools.stack import functions, load_app
from tests.conftest import new_client_ip
from tests.helpers import PASSWORD, register, unique_email

EVENTS = Path(__file__).resolve().parents[1] / "events" / "lambda"
SPECS = functions()
BY_NAME = {spec.name: spec for spec in SPECS}
VOLATILE = {"id", "email", "access_token", "refresh_token"}


def event(name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((EVENTS / name).read_text())
    ip = new_client_ip()  # its own client address: per-IP limits never see another test's traffic
    data["headers"]["x-forwarded-for"] = ip
    data["requestContext"]["http"]["sourceIp"] = ip
    if "body" in changes:
        data["body"] = json.dumps(changes.pop("body"))
        data["headers"]["content-length"] = str(len(data["body"]))
    data.update(changes)
    return data


def lambda_handler(name: str) -> Any:
    spec = BY_NAME[name]
    load_app(spec)
    return sys.modules["aiteacher_fn_" + spec.name.replace("-", "_")].handler


def invoke(name: str, lambda_event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    reply = lambda_handler(name)(copy.deepcopy(lambda_event), None)
    body = reply.get("body") or ""
    raw = base64.b64decode(body) if reply.get("isBase64Encoded") else body.encode()
    return reply["statusCode"], {k.lower(): v for k, v in reply.get("headers", {}).items()}, raw


def over_http(client: Any, name: str, lambda_event: dict[str, Any]) -> Any:
    """The same request as the event, sent through the local gateway at /function/<name>/..."""
    http = lambda_event["requestContext"]["http"]
    headers = {k: v for k, v in lambda_event["headers"].items() if k not in ("host", "content-length")}
    return client.request(
        http["method"],
        f"/function/{name}{http['path']}",
        headers=headers,
        params=lambda_event.get("rawQueryString") or None,
        content=(lambda_event.get("body") or "").encode() or None,
    )


def normalized(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {k: ("<volatile>" if k in VOLATILE else normalized(v)) for k, v in payload.items()}
    if isinstance(payload, list):
        return [normalized(item) for item in payload]
    return payload


def same_answer(
    client: Any,
    name: str,
    lambda_event: dict[str, Any],
    http_event: dict[str, Any] | None = None,
    status: int | None = None,
) -> dict[str, Any]:
    code, headers, body = invoke(name, lambda_event)
    response = over_http(client, name, http_event or lambda_event)
    assert code == response.status_code, (body, response.text)
    if status is not None:
        assert code == status, body
    assert headers["content-type"] == response.headers["content-type"]
    assert normalized(json.loads(body)) == normalized(response.json())
    assert headers["x-request-id"]  # the web layer runs under Lambda too
    return json.loads(body)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_every_function_answers_a_function_url_event(spec, client) -> None:  # type: ignore[no-untyped-def]
    body = same_answer(client, spec.name, event("any.function-url-health.json"), status=200)
    assert body == {"status": "ok", "function": spec.name}


def test_faculties_get(client) -> None:  # type: ignore[no-untyped-def]
    lambda_event = event("faculties.function-url-get.json")
    body = same_answer(client, "faculties", lambda_event, status=200)
    assert body and {"id", "code", "name", "departments", "semesters"} <= body[0].keys()
    assert (
        invoke("faculties", lambda_event)[1]["cache-control"]
        == over_http(client, "faculties", lambda_event).headers["cache-control"]
    )


def test_register_post(client) -> None:  # type: ignore[no-untyped-def]
    recorded = json.loads(json.loads((EVENTS / "auth-register.function-url-post.json").read_text())["body"])
    first = event("auth-register.function-url-post.json", body={**recorded, "email": unique_email("lambda")})
    second = event("auth-register.function-url-post.json", body={**recorded, "email": unique_email("http")})
    body = same_answer(client, "auth-register", first, second, status=201)
    assert body["role"] == "student"
    duplicate = invoke("auth-register", first)  # the email Lambda just registered
    assert duplicate[0] == 409
    assert duplicate[1]["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("recorded", ["auth-login.function-url-post.json", "auth-login.apigw-v2-default-route.json"])
def test_login_post(recorded: str, client) -> None:  # type: ignore[no-untyped-def]
    user = register(client)
    credentials = {"email": user["email"], "password": PASSWORD}
    body = same_answer(client, "auth-login", event(recorded, body=credentials), status=200)
    assert body["token_type"] == "bearer" and body["access_token"] and body["refresh_token"]
    wrong = event(recorded, body={**credentials, "password": "not the password at all"})
    problem = same_answer(client, "auth-login", wrong, status=401)
    assert problem["code"] == "invalid_credentials"


def test_malformed_body_is_the_same_problem(client) -> None:  # type: ignore[no-untyped-def]
    broken = event("auth-login.function-url-post.json")
    broken["body"] = "{not json"
    problem = same_answer(client, "auth-login", broken, status=422)
    assert problem["code"] == "validation_error"


def test_login_on_the_rest_alias_route(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An API Gateway route on the REST alias: API_GATEWAY_BASE_PATH (set per function by the Lambda
    plan) strips the alias, so the app sees `/` and answers as over HTTP."""
    from aiteacher.config import reset_caches

    user = register(client)
    lambda_event = event("auth-login.apigw-v2-rest-alias.json", body={"email": user["email"], "password": PASSWORD})
    assert invoke("auth-login", lambda_event)[0] == 404, "without the base path the alias reaches the app"
    monkeypatch.setenv("API_GATEWAY_BASE_PATH", "/auth/login")
    reset_caches()
    try:
        status, _, body = invoke("auth-login", lambda_event)
    finally:
        monkeypatch.undo()
        reset_caches()
    assert status == 200 and json.loads(body)["token_type"] == "bearer"
