"""exam-generate and exam: an RQ job builds verified items from the tenant's material; keys are shown
only to the creator, the faculty's academics and admins."""

from __future__ import annotations

import pytest

from tests.helpers import assert_problem, bearer, hierarchy, make_pdf, place, run_jobs, signed_in, upload

LECTURE = [
    [
        "Processes and threads.",
        "A process is a running program with its own address space.",
        "A thread is the smallest unit of execution that the operating system scheduler manages.",
        "Threads of one process share the heap but each thread has its own stack.",
    ],
    [
        "Scheduling.",
        "Round robin scheduling gives every runnable thread a fixed time quantum in turn.",
        "A context switch saves the registers of one thread and restores those of another.",
        "Priority inversion happens when a low priority thread holds a lock that a high priority thread needs.",
    ],
    [
        "Synchronisation.",
        "A mutex guarantees mutual exclusion inside a critical section.",
        "A semaphore is a counter with atomic wait and signal operations.",
        "Deadlock requires mutual exclusion, hold and wait, no preemption and circular wait.",
    ],
    [
        "Memory.",
        "Virtual memory gives every process the illusion of a large contiguous address space.",
        "The translation lookaside buffer caches recent page table entries.",
        "Thrashing occurs when the working sets of the processes do not fit in physical memory.",
    ],
]


@pytest.fixture(scope="module")
def course(gateway, admin_token):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        faculty = hierarchy(client)[1]
        academic = signed_in(client, "academic", admin_token)
        place(client, academic, faculty, 4)
        response = upload(client, academic, make_pdf(LECTURE), course="operating-systems", filename="os.pdf")
        assert response.status_code == 202
        run_jobs()
        pages = {i + 1: " ".join(lines) for i, lines in enumerate(LECTURE)}
        return {"faculty": faculty, "academic": academic, "document_id": response.json()["document_id"], "pages": pages}


@pytest.fixture
def student(client, course) -> dict:
    user = signed_in(client)
    place(client, user, course["faculty"], 4)
    return user


def _generate(client, user: dict, **body) -> str:  # type: ignore[no-untyped-def]
    response = client.post("/generate", headers=user["headers"], json={"num_mcq": 5, "num_theory": 2, **body})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return response.json()["exam_id"]


def test_exam_of_five_mcqs_and_two_theory_items_is_valid(client, student, course) -> None:
    exam_id = _generate(client, student, course="operating-systems")
    queued = client.get(f"/exams/{exam_id}", headers=student["headers"]).json()
    assert queued["status"] == "queued" and queued["questions"] == []
    run_jobs()
    exam = client.get(f"/exams/{exam_id}", headers=student["headers"]).json()
    assert exam["status"] == "ready", exam
    assert exam["keys_included"] is False  # a practice exam hides its keys until submit or reveal
    exam = client.post(f"/exams/{exam_id}/reveal", headers=student["headers"]).json()
    questions = exam["questions"]
    mcqs = [q for q in questions if q["type"] == "mcq"]
    theory = [q for q in questions if q["type"] == "theory"]
    assert len(mcqs) == 5 and len(theory) == 2
    for q in mcqs:
        assert len(q["options"]) == 4 and len({o.lower() for o in q["options"]}) == 4
        assert 0 <= q["answer_index"] < 4 and q["explanation"]
        assert q["source"]["document_id"] == course["document_id"]
        page_text = course["pages"][q["source"]["page"]].lower()
        # The key is supported by the cited page; the distractors are not the answer there.
        assert q["options"][q["answer_index"]].lower() in page_text
    for q in theory:
        assert q["model_answer"] and q["rubric"] and q["source"]["page"] in course["pages"]
    assert len({q["question"] for q in questions}) == len(questions)


def test_keys_visibility(client, student, course, admin_token) -> None:
    exam_id = _generate(client, student, num_mcq=2, num_theory=1)
    run_jobs()
    classmate = signed_in(client)
    place(client, classmate, course["faculty"], 4)
    seen = client.get(f"/exams/{exam_id}", headers=classmate["headers"]).json()
    assert seen["status"] == "ready" and seen["keys_included"] is False and seen["questions"]
    for q in seen["questions"]:
        assert not {"answer_index", "explanation", "model_answer", "rubric"} & q.keys()
    academic = client.get(f"/exams/{exam_id}", headers=course["academic"]["headers"]).json()
    assert academic["keys_included"] is True and "answer_index" in academic["questions"][0]
    assert client.get(f"/exams/{exam_id}", headers=bearer(admin_token)).json()["keys_included"] is True

    other_semester = signed_in(client)
    place(client, other_semester, course["faculty"], 5)
    assert_problem(client.get(f"/exams/{exam_id}", headers=other_semester["headers"]), 404)
    outsider_academic = signed_in(client, "academic", admin_token)
    place(client, outsider_academic, hierarchy(client)[0], 1)
    assert_problem(client.get(f"/exams/{exam_id}", headers=outsider_academic["headers"]), 404)
    assert_problem(client.get("/exams/00000000-0000-0000-0000-000000000000", headers=student["headers"]), 404)


def test_request_validation(client, student, course) -> None:
    assert_problem(client.post("/generate", json={"num_mcq": 1, "num_theory": 0}), 401)
    for body in (
        {"num_mcq": 0, "num_theory": 0},
        {"num_mcq": 500, "num_theory": 0},
        {"num_mcq": 1},
        {"num_mcq": 1, "num_theory": 0, "difficulty": "impossible"},
        {"num_mcq": -1, "num_theory": 1},
    ):
        assert_problem(client.post("/generate", headers=student["headers"], json=body), 422)
    unplaced = signed_in(client)
    assert_problem(client.post("/generate", headers=unplaced["headers"], json={"num_mcq": 1, "num_theory": 0}), 409)


def test_no_material_fails_with_a_clear_message(client, course) -> None:
    lonely = signed_in(client)
    place(client, lonely, course["faculty"], 8)
    exam_id = _generate(client, lonely)
    run_jobs()
    exam = client.get(f"/exams/{exam_id}", headers=lonely["headers"]).json()
    assert exam["status"] == "failed" and "upload documents" in exam["error"]


def test_topic_narrows_the_material(client, student, course) -> None:
    exam_id = _generate(client, student, num_mcq=2, num_theory=1, topic="deadlock and semaphores")
    run_jobs()
    exam = client.get(f"/exams/{exam_id}", headers=student["headers"]).json()
    assert exam["status"] == "ready" and exam["topic"] == "deadlock and semaphores"
    assert any(q["source"]["page"] == 3 for q in exam["questions"])
