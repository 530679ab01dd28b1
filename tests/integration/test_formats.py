"""Every ingested format through the HTTP contract: upload (or bucket drop) -> 202 with a Location -> progress
while it runs -> ready -> search finds the slide, section or scanned page -> the tutor cites it; and the bad
files of each kind become `failed` documents with a readable error while the worker goes on."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.make_documents import docx_bytes, pptx_bytes, scanned_pdf, text_then_scanned_pdf, zip_bomb
from tests.helpers import assert_problem, hierarchy, make_pdf, place, run_jobs, search, signed_in, upload

SEMESTER = 6  # the other test modules use other semesters, so searches here see only this module's material


@pytest.fixture
def faculty(client) -> dict:
    return hierarchy(client)[0]


@pytest.fixture
def academic(client, admin_token, faculty) -> dict:
    user = signed_in(client, "academic", admin_token)
    place(client, user, faculty, SEMESTER)
    return user


@pytest.fixture
def student(client, faculty) -> dict:
    user = signed_in(client)
    place(client, user, faculty, SEMESTER)
    return user


def _word() -> str:
    """A made-up term that only one test's document contains."""
    letters = "bcdfghjklmnpqrstvwxz"
    return "".join(letters[int(ch, 16) % len(letters)] + "aeiou"[int(ch, 16) % 5] for ch in uuid.uuid4().hex[:5])


def _pptx(term: str) -> bytes:
    return pptx_bytes(
        [
            {"title": "Week 3: graph search", "bullets": ["Breadth-first search explores level by level."]},
            {"title": "A picture slide"},  # no text: slide numbers must not shift
            {
                "title": f"The {term} heuristic",
                "bullets": [f"The {term} heuristic never overestimates the distance.", "It makes A* search optimal."],
                "table": [["Heuristic", "Admissible"], [term, "yes"]],
                "notes": f"Ask who has heard of {term} before.",
            },
        ],
        title="Graph search",
    )


def _docx(term: str) -> bytes:
    return docx_bytes(
        [
            ("Introduction", ["Dynamic programming stores the answers of subproblems."]),
            (
                "Memoisation",
                [f"The {term} table caches every subproblem answer exactly once.", "Lookups cost constant time."],
            ),
        ]
    )


def _markdown(term: str) -> bytes:
    return (
        f"# Number theory\n\nPrimes have exactly two divisors.\n\n## The {term} sieve\n\n"
        f"The {term} sieve crosses out the multiples of each prime up to the square root.\n"
    ).encode()


def _html(term: str) -> bytes:
    return (
        f"<!doctype html><html><head><title>Cryptography notes</title><style>p{{color:red}}</style></head>"
        f"<body><h1>Ciphers</h1><p>Caesar shifts every letter.</p><h2>The {term} cipher</h2>"
        f"<p>The {term} cipher xors the message with a one-time pad &amp; is unbreakable.</p></body></html>"
    ).encode()


def _scanned(term: str) -> bytes:
    """Page 1 has a text layer, page 2 is a scan (one OCR'd page keeps the test fast)."""
    return text_then_scanned_pdf(
        [["Lecture 9: compilers. Lexing turns characters into tokens."]],
        [[f"The {term} parser builds the syntax tree bottom up."]],
    )


FORMATS = {
    # kind: (builder, unit, unit number holding the term, a question about the term)
    "pptx": (_pptx, "slide", 3, "Which heuristic never overestimates the distance?"),
    "docx": (_docx, "section", 2, "Which table caches every subproblem answer?"),
    "markdown": (_markdown, "section", 2, "Which sieve crosses out the multiples of each prime?"),
    "html": (_html, "section", 2, "Which cipher xors the message with a one-time pad?"),
    "pdf": (_scanned, "page", 2, "Which parser builds the syntax tree bottom up?"),
}


def _follow(client, user: dict, response: Any) -> dict:
    """The 202's Location, polled once the worker has run."""
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location == f"/documents/{response.json()['document_id']}"
    queued = client.get(location, headers=user["headers"]).json()
    assert queued["status"] == "queued" and queued["progress"] == {"stage": "queued", "done": 0, "total": 0}
    run_jobs()
    document = client.get(location, headers=user["headers"])
    assert document.status_code == 200
    return document.json()


@pytest.mark.parametrize("kind", list(FORMATS))
def test_each_format_is_searchable_and_cited_by_its_unit(client, academic, student, kind: str) -> None:
    build, unit, number, question = FORMATS[kind]
    term = _word()
    course = f"formats-{kind}-{term}"
    # The name says nothing true about the content: the kind is sniffed from the bytes.
    response = upload(client, academic, build(term), course=course, filename="lecture.bin")
    assert response.json()["format"] == kind
    doc = _follow(client, academic, response)
    assert doc["status"] == "ready" and doc["error"] is None, doc
    assert doc["format"] == kind and doc["unit"] == unit
    assert doc["progress"] == {"stage": "done", "done": doc["pages"], "total": doc["pages"]}
    assert doc["ocr_pages"] == ([2] if kind == "pdf" else [])

    results = search(client, student, question, course=course).json()["results"]
    assert results and results[0]["document_id"] == doc["id"], results
    assert results[0]["page"] == number and results[0]["unit"] == unit
    assert term in results[0]["text"].lower()
    assert results[0]["ocr"] is (kind == "pdf")

    reply = client.post("/chat", headers=student["headers"], json={"message": question, "course": course}).json()
    assert reply["refused"] is False, reply
    cited = [c for c in reply["citations"] if c["document_id"] == doc["id"]]
    assert cited and cited[0]["page"] == number and cited[0]["unit"] == unit and cited[0]["ocr"] is (kind == "pdf")


def test_slides_keep_their_numbers_titles_tables_and_notes(client, academic, student) -> None:
    term = _word()
    course = f"slides-{term}"
    doc = _follow(client, academic, upload(client, academic, _pptx(term), course=course, filename="w3.pptx"))
    assert doc["pages"] == 3
    for query in (f"who has heard of {term} before", f"{term} admissible yes"):  # speaker notes, table cells
        results = search(client, student, query, course=course).json()["results"]
        assert results[0]["page"] == 3 and term in results[0]["text"].lower()
    assert "Speaker notes:" in search(client, student, f"heard of {term}", course=course).json()["results"][0]["text"]


def test_word_sections_follow_page_breaks_too(client, academic, student) -> None:
    term = _word()
    course = f"breaks-{term}"
    data = docx_bytes(
        [
            (None, ["Greedy algorithms take the locally best choice."]),
            (None, [f"The {term} exchange argument proves greedy choices safe."]),
        ],
        page_breaks=True,
    )
    doc = _follow(client, academic, upload(client, academic, data, course=course, filename="greedy.docx"))
    assert doc["status"] == "ready" and doc["pages"] == 2
    results = search(client, student, f"{term} exchange argument", course=course).json()["results"]
    assert results[0]["page"] == 2


def test_progress_is_visible_while_a_scan_is_recognised(client, academic, monkeypatch) -> None:
    """While the worker runs, GET /documents/{id} reports the stage and pages done of total."""
    from aiteacher import progress

    seen: list[dict] = []
    real_update = progress.Tracker.update

    def update_and_poll(self: Any, stage: str, done: int, total: int) -> None:
        real_update(self, stage, done, total)
        if self.kind == "document":
            view = client.get(f"/documents/{self.job_id}", headers=academic["headers"]).json()
            seen.append({"status": view["status"], **view["progress"]})

    monkeypatch.setattr(progress.Tracker, "update", update_and_poll)
    doc = _follow(
        client,
        academic,
        upload(
            client,
            academic,
            scanned_pdf([["Registers hold the operands."]]),
            course=f"progress-{_word()}",
            filename="scan.pdf",
        ),
    )
    assert doc["status"] == "ready"
    assert {"status": "processing", "stage": "extracting", "done": 1, "total": 1} in seen
    assert {"status": "processing", "stage": "ocr", "done": 1, "total": 1} in seen
    stages = [entry["stage"] for entry in seen]
    assert stages.index("extracting") < stages.index("ocr") < stages.index("embedding") < stages.index("indexing")


def test_progress_lines_are_logged_for_the_worker_log(client, academic, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="aiteacher.progress"):
        doc = _follow(
            client, academic, upload(client, academic, _docx(_word()), course=f"log-{_word()}", filename="dp.docx")
        )
    lines = [record.getMessage() for record in caplog.records if record.name == "aiteacher.progress"]
    assert any(line.startswith(f"document {doc['id']}: extracting") for line in lines), lines
    assert any(line.startswith(f"document {doc['id']}: embedding") for line in lines), lines


def _bad_files() -> dict[str, tuple[bytes, str]]:
    pptx, docx = _pptx("truncated"), _docx("truncated")
    return {
        "truncated.pptx": (pptx[: len(pptx) // 2], "damaged"),
        "truncated.docx": (docx[: len(docx) // 3], "damaged"),
        "bomb.docx": (zip_bomb("docx"), "zip bomb"),
        "bomb.pptx": (zip_bomb("pptx"), "zip bomb"),
        "empty.docx": (docx_bytes([(None, [])]), "no text"),
        "pictures.pptx": (pptx_bytes([{"title": ""}, {}]), "no text"),
        "garbage.html": (b"<html><body><<<>>>&&&;;;<//><script>alert(1)</script><p>**</p></body></html>", "no text"),
        "markup-only.md": (b"# \n\n---\n\n***\n", "no text"),
        "image-only.pdf": (scanned_pdf([[]]), "no readable text"),
        "fake.docx": (b"PK\x03\x04" + b"word/document.xml" + b"\x00" * 200, "damaged"),
    }


@pytest.mark.parametrize("name", list(_bad_files()))
def test_bad_files_fail_with_a_readable_error_and_the_worker_goes_on(client, academic, name: str) -> None:
    data, words = _bad_files()[name]
    doc = _follow(client, academic, upload(client, academic, data, course="bad-files", filename=name))
    assert doc["status"] == "failed" and words in doc["error"].lower(), doc
    assert doc["progress"]["stage"] == "failed"
    good = _follow(
        client, academic, upload(client, academic, _markdown(_word()), course="bad-files", filename="next.md")
    )
    assert good["status"] == "ready"


@pytest.mark.parametrize(
    "data,words",
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "legacy office"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a format"),
        (b"PK\x03\x04" + b"\x00" * 64, "zip archive"),
        (b"", "empty"),
    ],
)
def test_uploads_of_unsupported_kinds_are_refused_with_415(client, academic, data: bytes, words: str) -> None:
    body = assert_problem(upload(client, academic, data, filename="lecture.pptx"), 415, "unsupported_format")
    assert words in body["detail"].lower()


def test_too_many_slides_fail_the_document(client, academic, monkeypatch) -> None:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("PDF_MAX_PAGES", "2")
    reset_caches()
    try:
        doc = _follow(client, academic, upload(client, academic, _pptx(_word()), course="limits", filename="big.pptx"))
    finally:
        monkeypatch.undo()
        reset_caches()
    assert doc["status"] == "failed" and "more than 2 slides" in doc["error"]


def test_scanned_pages_over_the_ocr_cap_fail_the_document(client, academic, monkeypatch) -> None:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("INGEST_OCR_MAX_PAGES", "1")
    reset_caches()
    try:
        doc = _follow(
            client,
            academic,
            upload(client, academic, scanned_pdf([["one"], ["two"]]), course="limits", filename="scan.pdf"),
        )
    finally:
        monkeypatch.undo()
        reset_caches()
    assert doc["status"] == "failed" and "at most 1" in doc["error"] and "OCR" in doc["error"]


def test_pptx_and_docx_dropped_into_the_bucket_become_searchable(client, admin_token, student) -> None:
    from aiteacher.storage import get_s3

    admin = {"Authorization": f"Bearer {admin_token}"}
    token = {"Authorization": "Bearer test-events-token"}
    terms = {}
    for kind, build in (("pptx", _pptx), ("docx", _docx)):
        term = terms[kind] = _word()
        key = f"eng/{SEMESTER}/bucket-{term}/lecture.{kind}"
        put = get_s3().put_object(Bucket="curriculum", Key=key, Body=build(term))
        event = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": "curriculum"},
                        "object": {"key": key, "eTag": put["ETag"].strip('"'), "size": 1},
                    },
                }
            ]
        }
        accepted = client.post("/events/object-created", json=event, headers=token)
        assert accepted.status_code == 202 and accepted.json()["accepted"][0]["key"] == key, accepted.text
    run_jobs()
    documents = client.get("/documents", headers=admin, params={"status": "ready"}).json()["documents"]
    for kind, question, number in (("pptx", "heuristic never overestimates", 3), ("docx", "table caches", 2)):
        term = terms[kind]
        doc = next(d for d in documents if d["course"] == f"bucket-{term}")
        assert doc["format"] == kind and doc["source"] == "bucket"
        assert doc["title"] == ("Graph search" if kind == "pptx" else "Introduction")  # from the file itself
        results = search(client, student, f"{term} {question}", course=f"bucket-{term}").json()["results"]
        assert results[0]["document_id"] == doc["id"] and results[0]["page"] == number


def test_other_tenants_never_see_a_slide(client, academic, faculty, admin_token) -> None:
    term = _word()
    course = f"tenancy-{term}"
    _follow(client, academic, upload(client, academic, _pptx(term), course=course, filename="w3.pptx"))
    other_faculty = hierarchy(client)[1]
    for where, semester in ((faculty, SEMESTER - 1), (other_faculty, SEMESTER)):
        other = signed_in(client)
        place(client, other, where, semester)
        results = search(client, other, f"{term} heuristic").json()["results"]
        assert all(term not in r["text"].lower() for r in results)


def test_a_pdf_with_a_text_layer_is_not_ocred(client, academic) -> None:
    doc = _follow(
        client,
        academic,
        upload(
            client,
            academic,
            make_pdf([["Stacks are last in, first out."]]),
            course=f"text-{_word()}",
            filename="stacks.pdf",
        ),
    )
    assert doc["status"] == "ready" and doc["format"] == "pdf" and doc["ocr_pages"] == []


def test_exam_generate_202_names_a_location_with_progress(client, academic, student) -> None:
    term = _word()
    course = f"exam-{term}"
    _follow(client, academic, upload(client, academic, _pptx(term), course=course, filename="w3.pptx"))
    response = client.post(
        "/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 1, "course": course}
    )
    assert response.status_code == 202
    location = response.headers["location"]
    assert location == f"/exams/{response.json()['exam_id']}"
    queued = client.get(location, headers=student["headers"]).json()
    assert queued["progress"] == {"stage": "queued", "done": 0, "total": 2}
    run_jobs()
    exam = client.get(location, headers=student["headers"]).json()
    assert exam["status"] == "ready", exam
    assert exam["progress"] == {"stage": "done", "done": len(exam["questions"]), "total": 2}


def test_only_academics_of_the_faculty_upload_slides(client, academic, student, admin_token) -> None:
    slides = _pptx(_word())
    assert_problem(upload(client, student, slides, filename="w3.pptx"), 403, "forbidden")
    other = hierarchy(client)[1]
    refused = upload(client, academic, slides, filename="w3.pptx", faculty_id=other["id"])
    assert_problem(refused, 403)
    assert "location" not in refused.headers
    anonymous = client.post(
        "/ingest", files={"file": ("w3.pptx", slides, "application/octet-stream")}, data={"course": "x"}
    )
    assert_problem(anonymous, 401)
    for document_id in ("no-such-document", "0" * 36):
        assert_problem(client.get(f"/documents/{document_id}", headers=academic["headers"]), 404)
