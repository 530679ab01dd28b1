"""Abuse of the edge, through HTTP: rate limits that a bad token cannot switch off, login throttling
without lockout (real sockets from several loopback addresses), X-Forwarded-For only from trusted
proxies, streamed bodies over the limit, bounded inputs, one X-Request-ID, security headers, common
passwords, and the docs page and OpenAPI document (#8 items 5, 6, 8, 9, 11; #10 proxies and bodies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import PASSWORD, assert_problem, bearer, register, signed_in, unique_email


def _from(address: str, base_url: str) -> httpx.Client:
    """A client whose TCP connections leave from `address` (127.0.0.x), to the real uvicorn server."""
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address), timeout=30)


@pytest.fixture
def low_limits(monkeypatch) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from aiteacher.config import reset_caches

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_caches()

    yield apply
    monkeypatch.undo()
    reset_caches()


def _revoked_token(client: Any) -> str:
    user = signed_in(client)
    assert client.post("/auth/logout", headers=user["headers"], json={}).status_code == 204
    assert_problem(client.get("/me", headers=user["headers"]), 401, "token_revoked")
    return user["access_token"]


# --- 5. rate limits cannot be switched off --------------------------------------------------------


def test_a_revoked_token_does_not_switch_off_the_login_rate_limit(client) -> None:
    token = _revoked_token(client)
    statuses = [
        client.post(
            "/auth/login", headers=bearer(token), json={"email": unique_email(), "password": "wrong password"}
        ).status_code
        for _ in range(31)
    ]  # auth-login allows 30 per minute per caller
    assert statuses[-1] == 429, statuses
    assert statuses.count(429) >= 1 and set(statuses) <= {401, 429}


@pytest.mark.parametrize(
    "path,method,body", [("/faculties", "GET", None), ("/auth/refresh", "POST", {"refresh_token": "x"})]
)
def test_a_revoked_expired_or_garbage_token_is_counted_as_anonymous(client, low_limits, path, method, body) -> None:
    from aiteacher.security.tokens import issue

    token = _revoked_token(client)
    expired, _ = issue("access", sub="someone", role="admin", family="f", ttl_seconds=-120)
    function = "faculties" if path == "/faculties" else "auth-refresh"
    low_limits(RATE_LIMITS=json.dumps({function: "4/60"}))
    headers = [bearer(token), bearer("not-a-jwt"), bearer(expired), {"Authorization": "Basic abc"}, bearer(token)]
    statuses = [client.request(method, path, headers=h, json=body).status_code for h in headers]
    # Revoked, garbage, expired (even an admin's), wrong scheme: all share the address's anonymous window of 4.
    assert statuses[-1] == 429, statuses
    assert 429 not in statuses[:4], statuses


# --- 6. login throttling without lockout; X-Forwarded-For only from trusted proxies ----------------


def test_wrong_passwords_from_one_address_never_block_the_right_password_from_another(live_gateway) -> None:
    with _from("127.0.0.2", live_gateway) as attacker, _from("127.0.0.3", live_gateway) as owner:
        user = register(owner)
        statuses = []
        for _ in range(12):
            statuses.append(
                attacker.post("/auth/login", json={"email": user["email"], "password": "wrong password"}).status_code
            )
        assert 429 in statuses, statuses  # the attacker's address is slowed down ...
        assert_problem(attacker.post("/auth/login", json={"email": user["email"], "password": PASSWORD}), 429)
        # ... the owner, from another address, signs in at once, again and again.
        for _ in range(3):
            assert owner.post("/auth/login", json={"email": user["email"], "password": PASSWORD}).status_code == 200


def test_failed_logins_from_one_address_get_a_progressive_delay(live_gateway, low_limits) -> None:
    from aiteacher.cache import get_redis
    from aiteacher.security.login_throttle import LoginAttempt

    low_limits(LOGIN_FREE_FAILURES="0", LOGIN_MAX_DELAY_SECONDS="60")
    with _from("127.0.0.4", live_gateway) as client:
        user = register(client)
        delay_key = LoginAttempt.of(user["email"], "127.0.0.4").delay
        wrong = {"email": user["email"], "password": "wrong password"}
        waits = []
        for failures in range(1, 5):
            assert client.post("/auth/login", json=wrong).status_code == 401
            if failures >= 3:  # 8 s and 16 s: wide enough to check on a loaded machine
                refused = client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
                body = assert_problem(refused, 429, "rate_limited")  # even the right password waits here
                assert "wait" in body["detail"]
                waits.append(int(refused.headers["retry-after"]))
            get_redis().delete(delay_key)  # the delay passes (expired here rather than slept through)
        assert 7 <= waits[0] <= 8 and 15 <= waits[1] <= 16, waits  # doubling: 2, 4, 8, 16 s
        # The right password after the delay signs in and clears this address's failures.
        assert client.post("/auth/login", json={"email": user["email"], "password": PASSWORD}).status_code == 200
        assert client.post("/auth/login", json=wrong).status_code == 401
        assert 1 <= get_redis().pttl(delay_key) <= 2000  # back to the first step


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(live_gateway) -> None:
    # 127.0.0.5 is no trusted proxy: whatever X-Forwarded-For it sends, it is one caller with one window.
    with _from("127.0.0.5", live_gateway) as client:
        remaining = [
            int(client.get("/faculties", headers={"X-Forwarded-For": f"198.51.100.{n}"}).headers["ratelimit-remaining"])
            for n in range(1, 5)
        ]
    assert remaining == sorted(remaining, reverse=True) and len(set(remaining)) == 4, remaining


def test_x_forwarded_for_is_walked_right_to_left_past_trusted_networks() -> None:
    from aiteacher.proxies import client_address, parse_trusted

    knative = parse_trusted(["127.0.0.1/32", "10.0.0.0/8"])
    # client -> ingress (10.1.0.7) -> activator (10.2.0.9) -> queue-proxy (127.0.0.1) -> app; a forged hop first.
    chain = "6.6.6.6, 203.0.113.9, 10.1.0.7, 10.2.0.9"
    assert client_address("127.0.0.1", chain, knative) == "203.0.113.9"
    assert client_address("127.0.0.1", "203.0.113.9", knative) == "203.0.113.9"  # activator out of the path
    assert client_address("203.0.113.50", chain, knative) == "203.0.113.50"  # untrusted peer: header ignored
    assert client_address("127.0.0.1", "garbage, 10.2.0.9", knative) == "10.2.0.9"
    assert client_address("127.0.0.1", "[2001:db8::1]:443", knative) == "2001:db8::1"
    assert client_address("127.0.0.1", chain, parse_trusted([])) == "127.0.0.1"  # nothing trusted by default
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_trusted(["10.0.0.0/33"])


# --- #10: streamed bodies are bounded too --------------------------------------------------------


def test_a_chunked_json_body_over_the_limit_is_413_problem(live_gateway) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "a@example.edu", "password": "'
        for _ in range(30):
            yield b"x" * 10_000  # 300 KB > MAX_JSON_BODY_BYTES (256 KiB), no Content-Length
        yield b'"}'

    with _from("127.0.0.6", live_gateway) as client:
        response = client.post("/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    body = assert_problem(response, 413, "payload_too_large")
    assert "exceeds" in body["detail"]
    assert response.headers.get_list("x-request-id") and len(response.headers.get_list("x-request-id")) == 1


# --- 8. bounded inputs; exactly one X-Request-ID -----------------------------------------------------


def test_huge_numbers_are_422_not_500(client, admin_token) -> None:
    huge = 10**30
    academic = signed_in(client, "academic", admin_token)
    student = signed_in(client)
    assert_problem(client.get(f"/documents?offset={huge}", headers=academic["headers"]), 422, "validation_error")
    assert_problem(client.get(f"/documents?faculty_id={huge}", headers=academic["headers"]), 422)
    for field in ("faculty_id", "department_id", "semester_id"):
        assert_problem(client.put("/me", headers=student["headers"], json={field: huge}), 422, "validation_error")
        assert_problem(client.put("/me", headers=student["headers"], json={field: 2**31}), 422, "validation_error")
    assert_problem(
        client.post("/generate", headers=student["headers"], json={"num_mcq": huge, "num_theory": 1}),
        422,
        "validation_error",
    )
    assert_problem(
        client.post(
            "/generate", headers=academic["headers"], json={"num_mcq": 1, "num_theory": 1, "semester_id": huge}
        ),
        422,
        "validation_error",
    )
    assert_problem(client.post("/search", headers=student["headers"], json={"query": "x", "faculty_id": huge}), 422)
    upload = client.post(
        "/ingest",
        headers=academic["headers"],
        data={"course": "c", "faculty_id": str(huge)},
        files={"file": ("x.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert_problem(upload, 422, "validation_error")


def test_every_reply_carries_exactly_one_request_id_and_the_security_headers(client) -> None:
    replies = [
        client.get("/faculties"),  # 200
        client.get("/me"),  # 401
        client.put("/me", json={"x": 1}, headers={"X-Request-ID": "my-id-1"}),  # 401 with a given id
        client.post("/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}),  # 422
        client.get("/function/faculties/nowhere"),  # 404 inside a function
        client.get("/no/such/function", headers={"X-Request-ID": "my-id-2"}),  # 404 of the gateway
        client.get("/openapi.json"),
    ]
    for reply in replies:
        assert len(reply.headers.get_list("x-request-id")) == 1, (reply.request.url, reply.headers)
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert replies[2].headers["x-request-id"] == "my-id-1" and replies[5].headers["x-request-id"] == "my-id-2"


# --- 9. common and blank passwords ------------------------------------------------------------------


@pytest.mark.parametrize(
    "password,code",
    [
        ("password", "password_too_common"),
        ("12345678", "password_too_common"),
        ("Password1", "password_too_common"),
        ("iloveyou123", "password_too_common"),
        (" " * 8, "password_blank"),
        ("\t" * 9, "password_blank"),
    ],
)
def test_common_and_blank_passwords_are_refused_with_a_clear_422(client, password, code) -> None:
    email = unique_email()
    response = client.post("/auth/register", json={"email": email, "password": password, "full_name": "X"})
    body = assert_problem(response, 422, code)
    assert f'"{password}"' not in response.text  # the password is never echoed
    assert "common" in body["detail"] or "spaces" in body["detail"]
    assert client.post("/auth/login", json={"email": email, "password": password}).status_code == 401


# --- 11. docs offline, OpenAPI security and problems -------------------------------------------------


def test_docs_page_and_its_assets_are_served_locally(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs/assets/init.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "init.js"):
        reply = client.get(f"/docs/assets/{asset}")
        assert reply.status_code == 200 and len(reply.content) > 30, asset
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_openapi_declares_bearer_security_and_problem_responses(client) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    anonymous = {("/auth/login", "post"), ("/auth/refresh", "post"), ("/faculties", "get")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (path, method) in anonymous:
                assert {"bearer": []} not in operation.get("security", [{}]) or {} in operation["security"]
            else:
                assert {"bearer": []} in operation.get("security", []), (path, method)
            for status, response in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    ref = response["content"]["application/problem+json"]["schema"]["$ref"]
                    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
                    assert {"type", "title", "status", "detail", "code"} <= set(schema["required"])
                    assert "application/json" not in response["content"]
    assert document["paths"]["/me"]["put"]["responses"]["401"]
