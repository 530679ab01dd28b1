"""Small HTTP helpers shared by the tests (they only speak the public contract)."""

from __future__ import annotations

import uuid
from typing import Any

PASSWORD = "correct horse battery staple"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.edu"


def register(
    client: Any, *, role: str = "student", token: str | None = None, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    email = email or unique_email(role)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(
        "/auth/register",
        json={"email": email, "password": password, "full_name": "Test User", "role": role},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "password": password}


def login(client: Any, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_in(client: Any, role: str = "student", admin_token: str | None = None) -> dict[str, Any]:
    """Register (through an admin for academics/admins) and log in; returns the user and tokens."""
    user = register(client, role=role, token=admin_token)
    tokens = login(client, user["email"])
    placer = {"admin_token": admin_token} if role != "student" else {}
    return {**user, **tokens, "headers": bearer(tokens["access_token"]), **placer}


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert body["status"] == status
    if code:
        assert body["code"] == code, body
    return body


FIXTURE_PDFS = __import__("pathlib").Path(__file__).parent / "fixtures" / "pdfs"


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    from tests.fixtures.make_pdfs import text_pdf

    return text_pdf(pages, title=title)


def hierarchy(client: Any) -> list[dict[str, Any]]:
    response = client.get("/faculties")
    assert response.status_code == 200
    return response.json()


def place(client: Any, user: dict[str, Any], faculty: dict[str, Any], semester_number: int | None = 1) -> None:
    """Students place themselves (PUT /me, open faculties); academics and admins are placed by the admin
    that created them (PUT /users/{id}/placement)."""
    body: dict[str, Any] = {"faculty_id": faculty["id"]}
    if semester_number is not None:
        body["semester_id"] = next(s["id"] for s in faculty["semesters"] if s["number"] == semester_number)
    if user.get("role", "student") == "student":
        response = client.put("/me", headers=user["headers"], json=body)
    else:
        response = client.put(f"/users/{user['id']}/placement", headers=bearer(user["admin_token"]), json=body)
    assert response.status_code == 200, response.text


def upload(
    client: Any,
    user: dict[str, Any],
    data: bytes,
    *,
    course: str = "algorithms",
    filename: str = "lecture.pdf",
    **form: Any,
) -> Any:
    fields = {"course": course, **{k: str(v) for k, v in form.items()}}
    return client.post(
        "/ingest", headers=user["headers"], files={"file": (filename, data, "application/pdf")}, data=fields
    )


def run_jobs() -> None:
    from aiteacher.queue import run_burst

    run_burst()


def search(client: Any, user: dict[str, Any], query: str, **extra: Any) -> Any:
    return client.post("/search", headers=user["headers"], json={"query": query, **extra})
