"""Curriculum through the HTTP contract: upload, ingestion job, documents, tenant-scoped search."""

from __future__ import annotations

import pytest

from tests.helpers import (
    FIXTURE_PDFS,
    assert_problem,
    hierarchy,
    make_pdf,
    place,
    run_jobs,
    search,
    signed_in,
    upload,
)

SORTING = [
    [
        "Merge sort divides the array into halves, sorts each half recursively and merges them.",
        "Its running time is O(n log n) in every case.",
    ],
    [
        "Quicksort picks a pivot and partitions the array around it.",
        "A bad pivot choice makes quicksort quadratic in the worst case.",
    ],
]


@pytest.fixture
def faculties(client) -> list[dict]:
    return hierarchy(client)


@pytest.fixture
def academic(client, admin_token, faculties) -> dict:
    user = signed_in(client, "academic", admin_token)
    place(client, user, faculties[0], semester_number=3)
    return user


def _student(client, faculty: dict, semester: int | None) -> dict:
    user = signed_in(client)
    if semester is not None:
        place(client, user, faculty, semester)
    return user


def _ingested(client, academic: dict, pages=SORTING, course: str = "algorithms", **form) -> dict:
    response = upload(client, academic, make_pdf(pages), course=course, **form)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["document_id"] and (body["status"] == "queued" or body["duplicate"])  # same file: same document
    run_jobs()
    document = client.get(f"/documents/{body['document_id']}", headers=academic["headers"])
    assert document.status_code == 200
    return document.json()


def test_upload_ingest_and_search_with_pages(client, academic, faculties) -> None:
    doc = _ingested(client, academic)
    assert doc["status"] == "ready" and doc["pages"] == 2 and doc["chunks"] >= 2 and doc["error"] is None
    student = _student(client, faculties[0], 3)
    response = search(client, student, "how does quicksort choose a pivot", top_k=3)
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["document_id"] == doc["id"] and results[0]["page"] == 2
    assert {"document_id", "title", "course", "page", "text", "score"} <= results[0].keys()
    assert "pivot" in results[0]["text"]
    merge = search(client, student, "merge sort halves").json()["results"]
    assert merge[0]["page"] == 1


def test_other_semester_and_faculty_never_see_it(client, academic, faculties) -> None:
    _ingested(client, academic, pages=[["The xylophonic lemma of Brandtwerk governs heap invariants."]])
    for faculty, semester in ((faculties[0], 4), (faculties[1], 3)):
        student = _student(client, faculty, semester)
        results = search(client, student, "xylophonic lemma of Brandtwerk").json()["results"]
        assert all("Brandtwerk" not in r["text"] for r in results)


def test_student_without_profile_gets_409(client, faculties) -> None:
    student = _student(client, faculties[0], None)
    body = assert_problem(search(client, student, "anything"), 409, "profile_incomplete")
    assert "PUT /me" in body["detail"]


def test_search_validation_and_auth(client, faculties) -> None:
    student = _student(client, faculties[0], 1)
    assert_problem(search(client, student, "x", top_k=0), 422)
    assert_problem(search(client, student, "x", top_k=51), 422)
    assert_problem(search(client, student, ""), 422)
    assert_problem(client.post("/search", json={"query": "x"}), 401)
    # A student cannot widen the tenant through the body.
    assert_problem(search(client, student, "x", faculty_id=faculties[1]["id"]), 403)


def test_search_cache_and_immediate_visibility_of_new_documents(client, academic, faculties) -> None:
    student = _student(client, faculties[0], 3)
    query = "what is the amortized cost of a splay tree access"
    first = search(client, student, query, course="data-structures")
    assert "x-cache" not in first.headers, "X-Cache would tell a student what classmates searched"
    assert search(client, academic, query, course="data-structures").headers["x-cache"] == "miss"
    assert search(client, academic, query, course="data-structures").headers["x-cache"] == "hit"
    _ingested(
        client,
        academic,
        course="data-structures",
        pages=[["A splay tree access has amortized cost O(log n) thanks to the rotations."]],
    )
    assert search(client, academic, query, course="data-structures").headers["x-cache"] == "miss"
    after = search(client, student, query, course="data-structures")
    assert any("splay" in r["text"] for r in after.json()["results"])


def test_delete_removes_vectors_and_cached_results(client, academic, faculties) -> None:
    doc = _ingested(
        client,
        academic,
        course="graphs",
        pages=[["Dijkstra's algorithm needs non-negative edge weights to be correct."]],
    )
    student = _student(client, faculties[0], 3)
    query = "why does dijkstra need non-negative weights"
    assert search(client, student, query, course="graphs").json()["results"]
    deleted = client.delete(f"/documents/{doc['id']}", headers=academic["headers"])
    assert deleted.status_code == 204
    assert search(client, student, query, course="graphs").json()["results"] == []
    assert_problem(client.get(f"/documents/{doc['id']}", headers=academic["headers"]), 404)


def test_document_access_rules(client, academic, admin_token, faculties) -> None:
    doc = _ingested(client, academic, course="networks", pages=[["TCP uses a three-way handshake."]])
    outsider = signed_in(client, "academic", admin_token)
    place(client, outsider, faculties[1], 1)
    assert_problem(client.get(f"/documents/{doc['id']}", headers=outsider["headers"]), 404)
    assert_problem(client.delete(f"/documents/{doc['id']}", headers=outsider["headers"]), 404)
    assert all(d["id"] != doc["id"] for d in client.get("/documents", headers=outsider["headers"]).json()["documents"])
    student = _student(client, faculties[0], 3)
    assert_problem(client.get("/documents", headers=student["headers"]), 403)
    listed = client.get("/documents", headers=academic["headers"], params={"course": "networks"}).json()["documents"]
    assert [d["id"] for d in listed] == [doc["id"]]
    admin_view = client.get(f"/documents/{doc['id']}", headers={"Authorization": f"Bearer {admin_token}"})
    assert admin_view.status_code == 200


def test_ingest_rejections(client, academic, faculties, monkeypatch) -> None:
    student = _student(client, faculties[0], 3)
    assert_problem(upload(client, student, make_pdf(SORTING)), 403, "forbidden")
    assert_problem(upload(client, academic, make_pdf(SORTING), faculty_id=faculties[1]["id"]), 403)
    assert_problem(upload(client, academic, b"\x89PNG\r\n\x1a\n" + bytes(range(256))), 415, "unsupported_format")
    missing_course = client.post(
        "/ingest", headers=academic["headers"], files={"file": ("a.pdf", make_pdf(SORTING), "application/pdf")}
    )
    assert_problem(missing_course, 422, "validation_error")
    assert_problem(
        client.post("/ingest", files={"file": ("a.pdf", b"%PDF-1.4", "application/pdf")}, data={"course": "x"}), 401
    )

    from aiteacher.config import reset_caches

    monkeypatch.setenv("INGEST_MAX_BYTES", "2048")
    reset_caches()
    try:
        big = make_pdf(SORTING) + b"%" + b"x" * 4096 + b"\n"
        assert len(big) > 2048
        assert_problem(upload(client, academic, big), 413, "payload_too_large")
    finally:
        monkeypatch.undo()
        reset_caches()


@pytest.mark.parametrize(
    "fixture,code_words",
    [
        ("empty.pdf", None),
        ("truncated.pdf", "damaged"),
        ("encrypted.pdf", "password"),
        ("encrypted_empty_password.pdf", "password"),
        ("bomb.pdf", None),
        ("scanned.pdf", "OCR"),
    ],
)
def test_bad_pdfs_fail_that_document_only(client, academic, fixture: str, code_words: str | None) -> None:
    data = (FIXTURE_PDFS / fixture).read_bytes()
    if not data.startswith(b"%PDF-"):
        assert_problem(upload(client, academic, data), 415)
        return
    response = upload(client, academic, data, filename=fixture)
    assert response.status_code == 202
    run_jobs()
    doc = client.get(f"/documents/{response.json()['document_id']}", headers=academic["headers"]).json()
    assert doc["status"] == "failed" and doc["error"], doc
    if code_words:
        assert code_words.lower() in doc["error"].lower()
    # The worker keeps serving: the next good PDF ingests.
    assert _ingested(client, academic, pages=[["Binary search halves the interval each step."]])["status"] == "ready"


def test_retried_job_ends_with_the_same_chunk_count(client, academic, monkeypatch) -> None:
    """A job that dies half-way (here: the embedder fails after the first batch) is retried by RQ and
    ends with the same chunks as a clean run: point ids are deterministic."""
    import aiteacher.curriculum.jobs as jobs
    from aiteacher.vectors import get_vector_store

    pages = [
        [f"Paragraph {i} about dynamic programming and memoisation of overlapping subproblems."] * 6 for i in range(12)
    ]
    clean = _ingested(client, academic, pages=pages, course="dp-clean")

    monkeypatch.setattr(jobs, "EMBED_BATCH", 4)
    from aiteacher.embeddings import get_embedder

    embedder = get_embedder()
    real_embed = embedder.embed
    calls = {"n": 0}

    def flaky_embed(texts):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed mid-job")
        return real_embed(texts)

    monkeypatch.setattr(embedder, "embed", flaky_embed)
    retried = _ingested(client, academic, pages=pages, course="dp-retried")
    assert calls["n"] > 2
    assert retried["status"] == "ready"
    assert retried["chunks"] == clean["chunks"]
    assert get_vector_store().count({"document_id": retried["id"]}) == clean["chunks"]
