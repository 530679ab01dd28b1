"""Schemathesis over the merged OpenAPI document (the gateway's /openapi.json), every operation, as a
student and as an admin: no server errors, and no status code, content type or body the document
does not declare (#8 item 12). SCHEMATHESIS_MAX_EXAMPLES bounds the run (CI keeps the default)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from aiteacher_devtools.gateway import build_gateway

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
schema = schemathesis.openapi.from_asgi("/openapi.json", build_gateway())
calls: dict[str, int] = {}  # operation and role -> examples sent (printed at the end: the run's figures)


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    operations = {key.rsplit(" as ", 1)[0] for key in calls}
    print(
        f"\nschemathesis: {len(operations)} operations x 2 roles, {sum(calls.values())} examples "
        f"(max {MAX_EXAMPLES} per operation and role)"
    )


@pytest.fixture(scope="module", autouse=True)
def generous_limits() -> Iterator[None]:
    """Fuzzing sends hundreds of requests from one client: limits high, so every example reaches a handler."""
    from aiteacher.config import reset_caches

    saved = {
        name: os.environ.get(name)
        for name in ("RATE_LIMITS", "RATE_LIMIT_REQUESTS", "LOGIN_MAX_FAILURES", "LOGIN_FREE_FAILURES")
    }
    os.environ.update(
        RATE_LIMITS=json.dumps({}), RATE_LIMIT_REQUESTS="100000", LOGIN_MAX_FAILURES="10000", LOGIN_FREE_FAILURES="100"
    )
    reset_caches()
    yield
    # The fuzzed requests were counted against the admin's own limits (ingest: 600 an hour): forget them,
    # or the rest of the suite, signed in as that admin, would meet 429s.
    from aiteacher.cache import get_redis

    redis = get_redis()
    for key in redis.scan_iter(match="rl:*", count=1000):
        redis.delete(key)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_caches()


@pytest.fixture(scope="module", autouse=True)
def faculties_open_again() -> Iterator[None]:
    """The admin's examples switch real faculties' enrolment policies (small ids exist): every faculty is
    `open` again afterwards, as the rest of the suite (and the demo) expects."""
    yield
    from sqlalchemy import update

    from aiteacher.db import transaction
    from aiteacher.db.models import Faculty

    with transaction() as session:
        session.execute(update(Faculty).values(enrolment_policy="open", enrolment_key_hash=None))


@pytest.fixture(scope="module")
def sign_in(gateway, admin_token) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Bearer headers for a role, from logins of this module's own (never the session's admin token, which a
    fuzzed logout would revoke for every later test). Logout examples get a fresh login each."""
    from fastapi.testclient import TestClient

    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, new_client_ip
    from tests.helpers import bearer, hierarchy, login, place, signed_in

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        student = signed_in(client)
        place(client, student, hierarchy(client)[0])
        accounts = {"student": (student["email"], student["password"]), "admin": (ADMIN_EMAIL, ADMIN_PASSWORD)}
        cached = {role: bearer(login(client, *account)["access_token"]) for role, account in accounts.items()}

        def headers(role: str, fresh: bool = False) -> dict[str, str]:
            return bearer(login(client, *accounts[role])["access_token"]) if fresh else cached[role]

        yield headers


@pytest.mark.parametrize("role", ["student", "admin"])
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)
def test_every_operation_conforms_to_the_document(case: Any, role: str, sign_in) -> None:  # type: ignore[no-untyped-def]
    key = f"{case.operation.method.upper()} {case.operation.path} as {role}"
    calls[key] = calls.get(key, 0) + 1
    case.call_and_validate(headers=sign_in(role, fresh=case.operation.path == "/auth/logout"), checks=CHECKS)
