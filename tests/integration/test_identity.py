"""Identity functions through the HTTP contract: register, login, refresh, logout, me, faculties."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.helpers import PASSWORD, assert_problem, bearer, login, register, signed_in, unique_email


def test_register_login_me_refresh_logout_happy_path(client) -> None:
    email = unique_email()
    created = client.post("/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Ada"})
    assert created.status_code == 201
    body = created.json()
    assert body["email"] == email and body["role"] == "student" and body["id"]

    tokens = login(client, email)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    me = client.get("/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": body["id"],
        "email": email,
        "full_name": "Ada",
        "role": "student",
        "faculty_id": None,
        "department_id": None,
        "semester_id": None,
        "push_enabled": False,
    }

    rotated = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert client.get("/me", headers=bearer(new["access_token"])).status_code == 200

    out = client.post("/auth/logout", headers=bearer(new["access_token"]), json={"refresh_token": new["refresh_token"]})
    assert out.status_code == 204 and out.content == b""
    assert_problem(client.get("/me", headers=bearer(new["access_token"])), 401, "token_revoked")
    assert_problem(client.post("/auth/refresh", json={"refresh_token": new["refresh_token"]}), 401)


def test_function_path_and_rest_alias_serve_the_same_function(client) -> None:
    user = signed_in(client)
    via_function = client.get("/function/me/", headers=user["headers"])
    via_alias = client.get("/me", headers=user["headers"])
    assert via_function.status_code == via_alias.status_code == 200
    assert via_function.json() == via_alias.json()


def test_email_is_case_insensitive_and_duplicates_conflict(client) -> None:
    email = unique_email()
    register(client, email=email)
    again = client.post("/auth/register", json={"email": email.upper(), "password": PASSWORD, "full_name": "X"})
    assert_problem(again, 409, "email_taken")
    assert login(client, email.upper())["access_token"]


def test_wrong_password_and_unknown_email_get_identical_401(client) -> None:
    user = register(client)
    wrong = client.post("/auth/login", json={"email": user["email"], "password": "not the password"})
    unknown = client.post("/auth/login", json={"email": unique_email(), "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"


@pytest.mark.parametrize("password", ["short", "x" * 129])
def test_password_length_bounds(client, password: str) -> None:
    response = client.post("/auth/register", json={"email": unique_email(), "password": password, "full_name": "X"})
    body = assert_problem(response, 422, "validation_error")
    assert "password" in body["detail"]


def test_long_passwords_are_not_truncated(client) -> None:
    password = "p" * 100 + "A"
    user = register(client, password=password)
    assert login(client, user["email"], password)
    almost = client.post("/auth/login", json={"email": user["email"], "password": "p" * 100 + "B"})
    assert_problem(almost, 401, "invalid_credentials")


def test_malformed_json_and_missing_fields_are_422_problems(client) -> None:
    broken = client.post("/auth/register", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_problem(broken, 422, "validation_error")
    missing = client.post("/auth/register", json={"email": unique_email()})
    body = assert_problem(missing, 422, "validation_error")
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "password"), ("body", "full_name")}
    bad_email = client.post("/auth/register", json={"email": "not-an-email", "password": PASSWORD, "full_name": "X"})
    assert_problem(bad_email, 422, "validation_error")
    unknown_field = client.post(
        "/auth/register", json={"email": unique_email(), "password": PASSWORD, "full_name": "X", "is_admin": True}
    )
    assert_problem(unknown_field, 422, "validation_error")
    assert_problem(client.post("/auth/login", json=[]), 422, "validation_error")


def test_student_cannot_create_academic_or_admin(client) -> None:
    anonymous = client.post(
        "/auth/register", json={"email": unique_email(), "password": PASSWORD, "full_name": "X", "role": "academic"}
    )
    assert_problem(anonymous, 403, "forbidden")
    student = signed_in(client)
    for role in ("academic", "admin"):
        response = client.post(
            "/auth/register",
            headers=student["headers"],
            json={"email": unique_email(), "password": PASSWORD, "full_name": "X", "role": role},
        )
        assert_problem(response, 403, "forbidden")


def test_admin_creates_academic(client, admin_token: str) -> None:
    academic = register(client, role="academic", token=admin_token)
    assert academic["role"] == "academic"
    tokens = login(client, academic["email"])
    assert client.get("/me", headers=bearer(tokens["access_token"])).json()["role"] == "academic"


def test_invalid_token_on_register_is_refused_not_ignored(client) -> None:
    response = client.post(
        "/auth/register",
        headers=bearer("garbage"),
        json={"email": unique_email(), "password": PASSWORD, "full_name": "X"},
    )
    assert_problem(response, 401, "invalid_token")


# --- token attacks --------------------------------------------------------------------------------


def _claims(user_id: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "typ": "access",
        "iss": "aiteacher",
        "aud": "aiteacher-api",
        "sub": user_id,
        "role": "admin",
        "iat": now,
        "exp": now + 600,
        "jti": "forged",
        "fam": None,
    }
    claims.update(overrides)
    return claims


def test_expired_token_is_refused(client) -> None:
    user = register(client)
    token = jwt.encode(
        _claims(user["id"], exp=int(time.time()) - 60, iat=int(time.time()) - 1000), TEST_JWT_SECRET, algorithm="HS256"
    )
    assert_problem(client.get("/me", headers=bearer(token)), 401, "token_expired")


def test_alg_none_token_is_refused(client) -> None:
    user = register(client)
    token = jwt.encode(_claims(user["id"]), key=None, algorithm="none")
    assert_problem(client.get("/me", headers=bearer(token)), 401, "invalid_token")


def test_token_signed_with_another_key_is_refused(client) -> None:
    user = register(client)
    token = jwt.encode(_claims(user["id"]), "another-secret-that-is-also-long-enough-0123456789", algorithm="HS256")
    assert_problem(client.get("/me", headers=bearer(token)), 401, "invalid_token")


def test_wrong_audience_and_issuer_are_refused(client) -> None:
    user = register(client)
    for override in ({"aud": "another-api"}, {"iss": "someone-else"}):
        token = jwt.encode(_claims(user["id"], **override), TEST_JWT_SECRET, algorithm="HS256")
        assert_problem(client.get("/me", headers=bearer(token)), 401, "invalid_token")


def test_missing_required_claim_is_refused(client) -> None:
    user = register(client)
    claims = _claims(user["id"])
    del claims["jti"]
    token = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    assert_problem(client.get("/me", headers=bearer(token)), 401, "invalid_token")


def test_refresh_token_is_not_an_access_token_and_vice_versa(client) -> None:
    user = signed_in(client)
    assert_problem(client.get("/me", headers=bearer(user["refresh_token"])), 401, "invalid_token")
    assert_problem(client.post("/auth/refresh", json={"refresh_token": user["access_token"]}), 401, "invalid_token")


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token"])
def test_malformed_authorization_header(client, header: str) -> None:
    assert_problem(client.get("/me", headers={"Authorization": header}), 401)


def test_no_token_is_401_with_www_authenticate(client) -> None:
    response = client.get("/me")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_reuse_revokes_the_whole_family(client) -> None:
    user = signed_in(client)
    first = client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert first.status_code == 200
    fresh = first.json()
    # The stolen (old) token comes back: reuse.
    reused = client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert_problem(reused, 401, "token_reused")
    # Both the fresh refresh token and the access tokens of that login are dead now.
    assert_problem(client.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]}), 401)
    assert_problem(client.get("/me", headers=bearer(fresh["access_token"])), 401, "token_revoked")
    assert_problem(client.get("/me", headers=user["headers"]), 401, "token_revoked")
    # Another login of the same user is untouched.
    other = login(client, user["email"])
    assert client.get("/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_without_token_is_401_and_logout_is_per_login(client) -> None:
    assert_problem(client.post("/auth/logout"), 401)
    user = signed_in(client)
    second = login(client, user["email"])
    assert client.post("/auth/logout", headers=user["headers"]).status_code == 204
    assert_problem(client.get("/me", headers=user["headers"]), 401, "token_revoked")
    assert_problem(client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]}), 401)
    assert client.get("/me", headers=bearer(second["access_token"])).status_code == 200


# --- profile --------------------------------------------------------------------------------------


def _hierarchy(client) -> list[dict]:
    response = client.get("/faculties")
    assert response.status_code == 200
    return response.json()


def test_faculties_lists_demo_hierarchy(client) -> None:
    faculties = _hierarchy(client)
    assert len(faculties) >= 2
    for faculty in faculties:
        assert {"id", "code", "name", "departments", "semesters"} <= faculty.keys()
        assert faculty["departments"] and all({"id", "name"} <= d.keys() for d in faculty["departments"])
        assert [s["number"] for s in faculty["semesters"]] == list(range(1, 9))
    assert client.get("/function/faculties/").json() == faculties


def test_put_me_sets_placement_and_rejects_cross_faculty(client) -> None:
    first, second = _hierarchy(client)[:2]
    user = signed_in(client)
    placement = {
        "faculty_id": first["id"],
        "department_id": first["departments"][0]["id"],
        "semester_id": first["semesters"][2]["id"],
    }
    updated = client.put("/me", headers=user["headers"], json=placement)
    assert updated.status_code == 200
    assert {k: updated.json()[k] for k in placement} == placement

    cross_dept = client.put("/me", headers=user["headers"], json={"department_id": second["departments"][0]["id"]})
    assert_problem(cross_dept, 422, "department_faculty_mismatch")
    cross_sem = client.put(
        "/me", headers=user["headers"], json={**placement, "semester_id": second["semesters"][0]["id"]}
    )
    assert_problem(cross_sem, 422, "semester_faculty_mismatch")
    unknown = client.put("/me", headers=user["headers"], json={"faculty_id": 999999})
    assert_problem(unknown, 422, "unknown_faculty")
    # Nothing changed after the rejected updates.
    assert {k: client.get("/me", headers=user["headers"]).json()[k] for k in placement} == placement

    moved = client.put("/me", headers=user["headers"], json={"faculty_id": second["id"]})
    assert moved.status_code == 200
    assert moved.json()["department_id"] is None and moved.json()["semester_id"] is None


def test_put_me_cannot_change_role_or_email(client) -> None:
    user = signed_in(client)
    for field, value in (("role", "admin"), ("email", "x@example.edu"), ("id", "x")):
        assert_problem(client.put("/me", headers=user["headers"], json={field: value}), 422, "validation_error")
    assert client.get("/me", headers=user["headers"]).json()["role"] == "student"


# --- limits and failure modes ---------------------------------------------------------------------


def test_failed_logins_are_throttled_per_account_past_a_higher_account_wide_ceiling(
    client, gateway, monkeypatch
) -> None:
    from fastapi.testclient import TestClient

    from aiteacher.config import get_settings, reset_caches
    from tests.conftest import new_client_ip

    assert get_settings().login_max_failures_per_account > get_settings().login_max_failures
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_ACCOUNT", "12")
    reset_caches()
    try:
        user = register(client)
        for _ in range(12):
            # A different address each time: only the account-wide ceiling can trip.
            with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as other:
                assert (
                    other.post("/auth/login", json={"email": user["email"], "password": "wrong password"}).status_code
                    == 401
                )
        blocked = client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        body = assert_problem(blocked, 429, "rate_limited")
        assert int(blocked.headers["retry-after"]) > 0
        assert "failed logins" in body["detail"]
    finally:
        monkeypatch.undo()
        reset_caches()


def test_failed_logins_are_throttled_per_ip(client, monkeypatch) -> None:
    from aiteacher.config import get_settings, reset_caches

    assert get_settings().login_max_failures_per_ip > get_settings().login_max_failures
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_IP", "12")
    reset_caches()
    try:
        for _ in range(12):  # different accounts from one address
            assert (
                client.post("/auth/login", json={"email": unique_email(), "password": "wrong password"}).status_code
                == 401
            )
        user = register(client)
        assert_problem(client.post("/auth/login", json={"email": user["email"], "password": PASSWORD}), 429)
    finally:
        monkeypatch.undo()
        reset_caches()


def test_rate_limit_gives_429_with_retry_after_and_headers(client) -> None:
    first = client.post("/auth/register", json={"email": unique_email(), "password": PASSWORD, "full_name": "X"})
    assert first.headers["ratelimit-limit"] == "20"
    assert first.headers["ratelimit-remaining"] == "19"
    for _ in range(19):
        client.post("/auth/register", json={"email": unique_email(), "password": "short", "full_name": "X"})
    limited = client.post("/auth/register", json={"email": unique_email(), "password": PASSWORD, "full_name": "X"})
    assert_problem(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["retry-after"]) <= 3600
    assert limited.headers["ratelimit-remaining"] == "0"


def test_redis_down_fails_closed_with_503(client, monkeypatch) -> None:
    user = signed_in(client)
    from aiteacher.config import reset_caches

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    reset_caches()
    try:
        assert_problem(client.get("/me", headers=user["headers"]), 503, "service_unavailable")
        assert_problem(client.post("/auth/login", json={"email": user["email"], "password": PASSWORD}), 503)
    finally:
        monkeypatch.undo()
        reset_caches()
    assert client.get("/me", headers=user["headers"]).status_code == 200


def test_unknown_route_and_method_are_problems(client) -> None:
    assert_problem(client.get("/nowhere"), 404, "not_found")
    assert_problem(client.delete("/me", headers=signed_in(client)["headers"]), 405, "method_not_allowed")


def test_request_id_is_echoed_and_generated(client) -> None:
    response = client.get("/faculties", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = client.get("/faculties", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces" and len(generated.headers["x-request-id"]) == 32


def test_cors_answers_only_configured_origins(client, gateway, monkeypatch) -> None:
    from aiteacher.config import reset_caches

    app = gateway.apps["faculties"]
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example.edu")
    reset_caches()
    app.middleware_stack = None  # rebuilt from the new settings on the next request
    try:
        preflight = client.options(
            "/faculties", headers={"Origin": "https://app.example.edu", "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.edu"
        other = client.get("/faculties", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    finally:
        monkeypatch.undo()
        reset_caches()
        app.middleware_stack = None
    plain = client.get("/faculties", headers={"Origin": "https://app.example.edu"})
    assert "access-control-allow-origin" not in plain.headers, "no origins configured: no CORS headers"


def test_profile_cache_never_serves_a_stale_placement(client) -> None:
    """GET /me and the search scope read a Redis copy of the profile; every change forgets it."""
    first, second = _hierarchy(client)[:2]
    user = signed_in(client)
    assert client.get("/me", headers=user["headers"]).json()["faculty_id"] is None  # now cached
    for faculty in (first, second, first):
        moved = client.put(
            "/me",
            headers=user["headers"],
            json={"faculty_id": faculty["id"], "semester_id": faculty["semesters"][0]["id"]},
        )
        assert moved.status_code == 200
        assert client.get("/me", headers=user["headers"]).json()["faculty_id"] == faculty["id"]
        assert client.get("/me", headers=user["headers"]).json()["semester_id"] == faculty["semesters"][0]["id"]
