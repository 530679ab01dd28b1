"""The web layer's failure modes that the functions cannot easily provoke through their contract."""

from __future__ import annotations

from fastapi.testclient import TestClient

from aiteacher.web import create_app


def test_unexpected_errors_are_500_problems_without_internals() -> None:
    app = create_app("probe", "a probe")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("SELECT password_hash FROM users -- secret detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "internal_error" and body["status"] == 500
    assert "password_hash" not in response.text and "RuntimeError" not in response.text


def test_oversized_json_body_is_413_before_it_is_read(monkeypatch) -> None:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("MAX_JSON_BODY_BYTES", "2048")
    reset_caches()
    app = create_app("probe", "a probe")

    @app.post("/echo")
    def echo(body: dict) -> dict:
        return body

    try:
        with TestClient(app) as client:
            response = client.post("/echo", json={"x": "y" * 5000})
    finally:
        monkeypatch.undo()
        reset_caches()
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_a_500_carries_exactly_one_request_id_the_callers_and_the_security_headers() -> None:
    app = create_app("probe", "a probe")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-500"})
        not_found = client.get("/nowhere", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 500
    assert response.headers.get_list("x-request-id") == ["req-500"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert not_found.headers.get_list("x-request-id") == ["req-404"]
