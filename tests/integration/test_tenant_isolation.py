"""Tenant isolation as a property: 8 (faculty, semester) tenants, each with its own canary phrase;
1,000 randomized queries by randomized users never return another tenant's chunk. The same check
against a deliberately broken filter must find the leak, so the property test can fail."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from tests.helpers import bearer, hierarchy, make_pdf, place, run_jobs, search, signed_in

SYLLABLES = ["zib", "quor", "vant", "mol", "trex", "pli", "dask", "wen", "gro", "sul", "fey", "nok"]


@dataclass(frozen=True)
class Tenant:
    faculty_id: int
    semester_id: int
    phrase: str


def _nonsense(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3))


@pytest.fixture(scope="module", autouse=True)
def generous_search_limit():  # type: ignore[no-untyped-def]
    """Thousands of queries by a few users: lift the per-user search limit for this module only."""
    from aiteacher.config import reset_caches

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATE_LIMITS", '{"search": "100000/60"}')
        reset_caches()
        yield
    reset_caches()


@pytest.fixture(scope="module")
def world(gateway, admin_token):  # type: ignore[no-untyped-def]
    """8 tenants with a canary document each, and users: a student per tenant, an academic per faculty."""
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    rng = random.Random(20261126)
    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        faculties = hierarchy(client)
        picks = (
            [(faculties[0], n) for n in (1, 2, 3, 4)]
            + [(faculties[1], n) for n in (1, 2)]
            + [(faculties[2], n) for n in (1, 2)]
        )
        tenants: list[Tenant] = []
        documents: dict[str, Tenant] = {}
        admin = {"headers": bearer(admin_token)}
        for faculty, number in picks:
            semester_id = next(s["id"] for s in faculty["semesters"] if s["number"] == number)
            words = [_nonsense(rng) for _ in range(4)]
            phrase = f"The {words[0]} protocol of {words[1]} governs the {words[2]} of {words[3]} herons."
            tenant = Tenant(faculty["id"], semester_id, phrase)
            response = client.post(
                "/ingest",
                headers=admin["headers"],
                data={"course": "canary", "faculty_id": str(faculty["id"]), "semester_id": str(semester_id)},
                files={"file": ("canary.pdf", make_pdf([["Canary page."], [phrase]]), "application/pdf")},
            )
            assert response.status_code == 202, response.text
            documents[response.json()["document_id"]] = tenant
            tenants.append(tenant)
        run_jobs()
        users = []
        for faculty, number in picks:
            student = signed_in(client)
            place(client, student, faculty, number)
            semester_id = next(s["id"] for s in faculty["semesters"] if s["number"] == number)
            users.append(("student", faculty["id"], semester_id, student))
        for faculty in faculties[:3]:
            academic = signed_in(client, "academic", admin_token)
            place(client, academic, faculty, None)
            users.append(("academic", faculty["id"], None, academic))
    return tenants, documents, users


def _count_leaks(client, world, queries: int, seed: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    tenants, documents, users = world
    rng = random.Random(seed)
    leaks = returned = 0
    for _ in range(queries):
        role, faculty_id, semester_id, user = rng.choice(users)
        target = rng.choice(tenants)
        words = target.phrase.split()
        query = " ".join(rng.sample(words, k=rng.randint(2, len(words))))
        body = {"top_k": rng.randint(1, 20)}
        if role == "academic" and rng.random() < 0.3:
            body["semester_id"] = rng.choice(tenants).semester_id
        response = search(client, user, query, **body)
        assert response.status_code == 200, response.text
        for result in response.json()["results"]:
            owner = documents.get(result["document_id"])
            if owner is None:
                continue  # material of other tests, checked by its own tenant below
            returned += 1
            allowed = owner.faculty_id == faculty_id and (role == "academic" or owner.semester_id == semester_id)
            leaks += not allowed
    return leaks, returned


@pytest.mark.slow
def test_no_query_ever_crosses_tenants(client, world) -> None:
    leaks, returned = _count_leaks(client, world, queries=1000, seed=1)
    assert returned > 500, "the queries must actually retrieve canaries for the property to mean anything"
    assert leaks == 0


def test_the_property_catches_a_broken_filter(client, world, monkeypatch) -> None:
    """Sabotage the tenant filter (drop the semester condition): the same check must see leaks."""
    from aiteacher.curriculum import search as curriculum

    original = curriculum.Scope.filters
    monkeypatch.setattr(curriculum.Scope, "filters", lambda self: {**original(self), "semester_id": None})
    monkeypatch.setenv("SEARCH_CACHE_SECONDS", "0")
    from aiteacher.config import reset_caches

    reset_caches()
    try:
        leaks, _ = _count_leaks(client, world, queries=150, seed=2)
    finally:
        monkeypatch.undo()
        reset_caches()
    assert leaks > 0
