"""Exam attempts over HTTP: a student takes an academic's exam and gets a graded result with page-linked
feedback; keys stay hidden until their own submit; attempts are private; the academic sees aggregates only."""

from __future__ import annotations

import json

import pytest

from tests.fakes import fake_openai_fixture  # noqa: F401 - registers the fake_openai fixture
from tests.helpers import assert_problem, bearer, hierarchy, make_pdf, place, run_jobs, signed_in, upload
from tests.integration.test_exams import LECTURE

KEYS = {"answer_index", "explanation", "model_answer", "rubric"}


@pytest.fixture(scope="module")
def course_exam(gateway, admin_token):  # type: ignore[no-untyped-def]
    """An academic's ready exam (3 MCQs + 1 theory item) on an uploaded lecture, and its keys."""
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        faculty = hierarchy(client)[0]
        academic = signed_in(client, "academic", admin_token)
        place(client, academic, faculty, 6)
        response = upload(client, academic, make_pdf(LECTURE), course="os-attempts", filename="os.pdf")
        assert response.status_code == 202, response.text
        run_jobs()
        generated = client.post(
            "/generate",
            headers=academic["headers"],
            json={
                "num_mcq": 3,
                "num_theory": 1,
                "course": "os-attempts",
                "semester_id": next(s["id"] for s in faculty["semesters"] if s["number"] == 6),
            },
        )
        assert generated.status_code == 202, generated.text
        run_jobs()
        exam_id = generated.json()["exam_id"]
        keyed = client.get(f"/exams/{exam_id}", headers=academic["headers"]).json()
        assert keyed["status"] == "ready" and keyed["keys_included"] is True, keyed
        return {
            "faculty": faculty,
            "academic": academic,
            "exam_id": exam_id,
            "keyed": keyed,
            "document_id": response.json()["document_id"],
        }


def _student(client, course_exam, semester: int = 6):  # type: ignore[no-untyped-def]
    user = signed_in(client)
    place(client, user, course_exam["faculty"], semester)
    return user


def _perfect_answers(keyed: dict) -> list[dict]:
    answers = []
    for index, question in enumerate(keyed["questions"]):
        if question["type"] == "mcq":
            answers.append({"question": index, "choice": question["answer_index"]})
        else:
            answers.append({"question": index, "text": question["model_answer"]})
    return answers


def test_student_takes_an_academics_exam_and_gets_a_graded_result_with_page_linked_feedback(
    client, course_exam
) -> None:
    exam_id, keyed = course_exam["exam_id"], course_exam["keyed"]
    student = _student(client, course_exam)
    before = client.get(f"/exams/{exam_id}", headers=student["headers"]).json()
    assert before["keys_included"] is False and all(not KEYS & q.keys() for q in before["questions"])

    started = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"])
    assert started.status_code == 201, started.text
    attempt = started.json()
    assert attempt["status"] == "in_progress" and attempt["items"] == []
    assert all(not KEYS & q.keys() for q in attempt["questions"])
    again = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"])
    assert again.status_code == 200 and again.json()["id"] == attempt["id"]

    url = f"/exams/{exam_id}/attempts/{attempt['id']}"
    answers = _perfect_answers(keyed)
    saved = client.put(url, headers=student["headers"], json={"answers": answers[:1]})
    assert saved.status_code == 200 and saved.json()["answers"] == [answers[0]]
    submitted = client.post(f"{url}/submit", headers=student["headers"], json={"answers": answers[1:]})
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "grading"  # the theory answer waits for the grading job
    assert [i["status"] for i in body["items"] if i["type"] == "mcq"] == ["graded"] * 3
    assert [i["status"] for i in body["items"] if i["type"] == "theory"] == ["pending"]

    run_jobs()
    result = client.get(url, headers=student["headers"]).json()
    assert result["status"] == "graded" and result["grader"] == "offline"
    assert result["score"] == result["max_score"] == 4.0 and result["percent"] == 100.0
    for item in result["items"]:
        source = item["source"]
        assert source["document_id"] == course_exam["document_id"]
        assert source["page_url"] == f"/documents/{source['document_id']}/pages/{source['page']}"
        assert item["feedback"]["right"] and not item["feedback"]["missing"]
        assert f"p. {source['page']}" in item["feedback"]["review"]
    theory = next(i for i in result["items"] if i["type"] == "theory")
    assert all(point["met"] and point["quote"] for point in theory["points"])
    # Now the student's own attempt is submitted: the exam shows its keys to them.
    assert client.get(f"/exams/{exam_id}", headers=student["headers"]).json()["keys_included"] is True


def test_attempts_are_private_to_their_student_and_tenant(client, course_exam, admin_token) -> None:
    exam_id = course_exam["exam_id"]
    owner = _student(client, course_exam)
    attempt = client.post(f"/exams/{exam_id}/attempts", headers=owner["headers"]).json()
    url = f"/exams/{exam_id}/attempts/{attempt['id']}"
    classmate = _student(client, course_exam)
    assert_problem(client.get(url, headers=classmate["headers"]), 404, "not_found")
    assert_problem(client.put(url, headers=classmate["headers"], json={"answers": []}), 404)
    assert_problem(client.post(f"{url}/submit", headers=classmate["headers"]), 404)
    other_tenant = signed_in(client)
    place(client, other_tenant, hierarchy(client)[1], 6)
    assert_problem(client.get(f"/exams/{exam_id}", headers=other_tenant["headers"]), 404)
    assert_problem(client.post(f"/exams/{exam_id}/attempts", headers=other_tenant["headers"]), 404)
    assert_problem(client.get(url, headers=other_tenant["headers"]), 404)
    other_semester = _student(client, course_exam, semester=2)
    assert_problem(client.get(url, headers=other_semester["headers"]), 404)
    assert_problem(client.get(url), 401)
    assert_problem(client.get(url, headers=bearer("not-a-token")), 401)
    # Academics and admins see keys and aggregates; they do not sit the exam.
    assert_problem(client.post(f"/exams/{exam_id}/attempts", headers=course_exam["academic"]["headers"]), 403)
    assert_problem(client.get(f"/exams/{exam_id}/attempts/{attempt['id']}", headers=bearer(admin_token)), 404)
    assert_problem(client.get(f"/exams/{exam_id}/attempts/no-such-attempt", headers=owner["headers"]), 404)


def test_malformed_answers_and_huge_indices_are_refused(client, course_exam) -> None:
    exam_id, keyed = course_exam["exam_id"], course_exam["keyed"]
    student = _student(client, course_exam)
    attempt = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()
    url = f"/exams/{exam_id}/attempts/{attempt['id']}"
    mcq = next(i for i, q in enumerate(keyed["questions"]) if q["type"] == "mcq")
    theory = next(i for i, q in enumerate(keyed["questions"]) if q["type"] == "theory")
    for bad in (
        [{"question": 10**12, "choice": 0}],
        [{"question": 999, "choice": 0}],
        [{"question": -1, "choice": 0}],
        [{"question": mcq, "choice": 4}],
        [{"question": mcq, "choice": 10**9}],
        [{"question": mcq, "text": "an essay"}],
        [{"question": mcq}],
        [{"question": theory, "choice": 1}],
        [{"question": theory}],
        [{"question": theory, "text": "x" * 10_001}],
        [{"question": mcq, "choice": 0, "extra": 1}],
        [{"question": "first", "choice": 0}],
        "not a list",
        [{"question": mcq, "choice": 0}] * 201,
    ):
        assert_problem(client.put(url, headers=student["headers"], json={"answers": bad}), 422)
        assert_problem(client.post(f"{url}/submit", headers=student["headers"], json={"answers": bad}), 422)
    assert_problem(
        client.put(
            url,
            headers=student["headers"],
            content=b"{not json",
        ),
        422,
    )
    # Nothing was stored by the refused requests; the attempt is still open.
    current = client.get(url, headers=student["headers"]).json()
    assert current["status"] == "in_progress" and current["answers"] == []


def test_double_submit_is_idempotent_and_answers_freeze(client, course_exam) -> None:
    exam_id, keyed = course_exam["exam_id"], course_exam["keyed"]
    student = _student(client, course_exam)
    attempt = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()
    url = f"/exams/{exam_id}/attempts/{attempt['id']}"
    mcq = next(i for i, q in enumerate(keyed["questions"]) if q["type"] == "mcq")
    first = client.post(
        f"{url}/submit",
        headers=student["headers"],
        json={"answers": [{"question": mcq, "choice": keyed["questions"][mcq]["answer_index"]}]},
    )
    assert first.status_code == 200 and first.json()["status"] == "graded"  # no theory text: nothing to wait for
    second = client.post(
        f"{url}/submit",
        headers=student["headers"],
        json={"answers": [{"question": mcq, "choice": (keyed["questions"][mcq]["answer_index"] + 1) % 4}]},
    )
    assert second.status_code == 200
    assert second.json()["score"] == first.json()["score"] == 1.0
    assert second.json()["items"] == first.json()["items"]
    assert_problem(client.put(url, headers=student["headers"], json={"answers": []}), 409, "attempt_submitted")
    # A new attempt can be started after a submitted one.
    assert client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()["id"] != attempt["id"]


def test_offline_grading_is_reproducible_and_partial_answers_get_partial_credit(client, course_exam) -> None:
    exam_id, keyed = course_exam["exam_id"], course_exam["keyed"]
    theory = next(i for i, q in enumerate(keyed["questions"]) if q["type"] == "theory")
    rubric = keyed["questions"][theory]["rubric"]
    answer = rubric[0] + " I am not sure about the rest."
    graded = []
    for _ in range(2):
        student = _student(client, course_exam)
        attempt = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()
        url = f"/exams/{exam_id}/attempts/{attempt['id']}"
        client.post(
            f"{url}/submit", headers=student["headers"], json={"answers": [{"question": theory, "text": answer}]}
        )
        run_jobs()
        graded.append(
            next(i for i in client.get(url, headers=student["headers"]).json()["items"] if i["index"] == theory)
        )
    assert graded[0]["points"] == graded[1]["points"] and graded[0]["score"] == graded[1]["score"]
    points = graded[0]["points"]
    assert points[0]["met"] and points[0]["quote"]
    if len(rubric) > 1:
        assert 0 < graded[0]["score"] < 1 and graded[0]["feedback"]["missing"]
    off_topic = _student(client, course_exam)
    attempt = client.post(f"/exams/{exam_id}/attempts", headers=off_topic["headers"]).json()
    url = f"/exams/{exam_id}/attempts/{attempt['id']}"
    client.post(
        f"{url}/submit",
        headers=off_topic["headers"],
        json={"answers": [{"question": theory, "text": "Bananas are yellow and grow in warm places."}]},
    )
    run_jobs()
    item = next(i for i in client.get(url, headers=off_topic["headers"]).json()["items"] if i["index"] == theory)
    assert item["score"] == 0.0 and not item["feedback"]["right"]


def test_academic_sees_aggregates_not_student_answers(client, course_exam) -> None:
    exam_id, keyed = course_exam["exam_id"], course_exam["keyed"]
    mcq = next(i for i, q in enumerate(keyed["questions"]) if q["type"] == "mcq")
    key = keyed["questions"][mcq]["answer_index"]
    wrong = (key + 1) % 4
    secret = "my very private essay sentence"
    for choice in (wrong, wrong, key):
        student = _student(client, course_exam)
        attempt = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()
        client.post(
            f"/exams/{exam_id}/attempts/{attempt['id']}/submit",
            headers=student["headers"],
            json={
                "answers": [
                    {"question": mcq, "choice": choice},
                    *(
                        {"question": i, "text": secret}
                        for i, q in enumerate(keyed["questions"])
                        if q["type"] == "theory"
                    ),
                ]
            },
        )
    run_jobs()
    response = client.get(f"/exams/{exam_id}/stats", headers=course_exam["academic"]["headers"])
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["attempts"] >= 3 and sum(b["attempts"] for b in stats["score_distribution"]) == stats["attempts"]
    item = stats["items"][mcq]
    assert 0 <= item["share_correct"] < 1
    assert item["most_chosen_wrong_option"]["index"] == wrong
    assert item["most_chosen_wrong_option"]["option"] == keyed["questions"][mcq]["options"][wrong]
    assert secret not in json.dumps(stats)
    student = _student(client, course_exam)
    assert_problem(client.get(f"/exams/{exam_id}/stats", headers=student["headers"]), 403)
    outsider = signed_in(client)
    place(client, outsider, hierarchy(client)[1], 6)
    assert_problem(client.get(f"/exams/{exam_id}/stats", headers=outsider["headers"]), 404)


def test_practice_exam_hides_keys_until_the_creator_submits_or_reveals(client, course_exam) -> None:
    creator = _student(client, course_exam)
    generated = client.post(
        "/generate", headers=creator["headers"], json={"num_mcq": 2, "num_theory": 0, "course": "os-attempts"}
    )
    assert generated.status_code == 202
    exam_id = generated.json()["exam_id"]
    assert_problem(client.post(f"/exams/{exam_id}/reveal", headers=creator["headers"]), 409, "exam_not_ready")
    run_jobs()
    exam = client.get(f"/exams/{exam_id}", headers=creator["headers"]).json()
    assert exam["status"] == "ready" and exam["keys_included"] is False and exam["kind"] == "practice"
    assert all(not KEYS & q.keys() for q in exam["questions"])
    assert_problem(client.get(f"/exams/{exam_id}/export?format=gift", headers=creator["headers"]), 403)
    classmate = _student(client, course_exam)
    assert_problem(client.post(f"/exams/{exam_id}/reveal", headers=classmate["headers"]), 403)
    revealed = client.post(f"/exams/{exam_id}/reveal", headers=creator["headers"])
    assert revealed.status_code == 200 and revealed.json()["keys_included"] is True
    assert all("answer_index" in q for q in revealed.json()["questions"])
    assert client.get(f"/exams/{exam_id}/export?format=gift", headers=creator["headers"]).status_code == 200
    # The reveal was the creator's: the classmate still sees no keys.
    assert client.get(f"/exams/{exam_id}", headers=classmate["headers"]).json()["keys_included"] is False
    assert_problem(client.get(f"/exams/{exam_id}/export?format=qti", headers=classmate["headers"]), 403)


def test_practice_exam_keys_show_after_the_creators_own_submit(client, course_exam) -> None:
    creator = _student(client, course_exam)
    exam_id = client.post(
        "/generate", headers=creator["headers"], json={"num_mcq": 1, "num_theory": 0, "course": "os-attempts"}
    ).json()["exam_id"]
    run_jobs()
    attempt = client.post(f"/exams/{exam_id}/attempts", headers=creator["headers"]).json()
    assert all(not KEYS & q.keys() for q in attempt["questions"])
    done = client.post(
        f"/exams/{exam_id}/attempts/{attempt['id']}/submit",
        headers=creator["headers"],
        json={"answers": [{"question": 0, "choice": 0}]},
    ).json()
    assert done["status"] == "graded" and "answer_index" in done["questions"][0]
    assert client.get(f"/exams/{exam_id}", headers=creator["headers"]).json()["keys_included"] is True


def test_exam_list_shows_own_and_course_exams_paginated(client, course_exam) -> None:
    student = _student(client, course_exam)
    mine = [
        client.post(
            "/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 0, "course": "os-attempts"}
        ).json()["exam_id"]
        for _ in range(2)
    ]
    first = client.get("/exams?limit=2", headers=student["headers"]).json()
    assert [e["id"] for e in first["exams"]] == mine[::-1] and first["next_offset"] == 2
    assert all(e["mine"] and e["status"] == "queued" for e in first["exams"])
    rest = client.get(f"/exams?limit=100&offset={first['next_offset']}", headers=student["headers"]).json()
    ids = [e["id"] for e in rest["exams"]]
    assert course_exam["exam_id"] in ids and not set(ids) & set(mine)
    assert all(e["kind"] == "course" for e in rest["exams"])  # classmates' practice exams are not listed
    outsider = signed_in(client)
    place(client, outsider, hierarchy(client)[1], 6)
    assert course_exam["exam_id"] not in [
        e["id"] for e in client.get("/exams?limit=100", headers=outsider["headers"]).json()["exams"]
    ]
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc", "offset=10000000000000"):
        assert_problem(client.get(f"/exams?{query}", headers=student["headers"]), 422)
    assert_problem(client.get("/exams"), 401)
    run_jobs()


@pytest.fixture
def openai_grader(fake_openai, monkeypatch):  # type: ignore[no-untyped-def]
    from aiteacher.config import reset_caches

    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("EMBEDDING_PROVIDER", "local")
    reset_caches()
    yield fake_openai
    monkeypatch.undo()
    reset_caches()


def _submit_theory(client, course_exam, text: str):  # type: ignore[no-untyped-def]
    keyed = course_exam["keyed"]
    theory = next(i for i, q in enumerate(keyed["questions"]) if q["type"] == "theory")
    student = _student(client, course_exam)
    attempt = client.post(f"/exams/{course_exam['exam_id']}/attempts", headers=student["headers"]).json()
    url = f"/exams/{course_exam['exam_id']}/attempts/{attempt['id']}"
    submitted = client.post(
        f"{url}/submit", headers=student["headers"], json={"answers": [{"question": theory, "text": text}]}
    )
    assert submitted.json()["status"] == "grading"
    return student, url, theory, len(keyed["questions"][theory]["rubric"])


def test_llm_grades_each_rubric_point_with_a_quote_and_holds_no_connection_while_waiting(
    client, course_exam, openai_grader
) -> None:
    from aiteacher.db import get_engine
    from tests.fakes.openai_server import FakeResponse, chat_completion

    answer = "Threads share the heap of their process. Each thread has its own stack."
    student, url, theory, points = _submit_theory(client, course_exam, answer)
    held: list[int] = []
    replies = [
        # First reply quotes text that is not in the answer: it fails validation and is repaired once.
        {
            "verdicts": [
                {"point": i, "met": True, "quote": "words the student never wrote", "comment": "ok"}
                for i in range(points)
            ]
        },
        {
            "verdicts": [
                {
                    "point": i,
                    "met": i == 0,
                    "quote": "its own stack" if i == 0 else "",
                    "comment": "right" if i == 0 else "missing",
                }
                for i in range(points)
            ]
        },
    ]

    def reply(request):  # type: ignore[no-untyped-def]
        held.append(get_engine().pool.checkedout())
        return FakeResponse(200, chat_completion(json.dumps(replies[min(len(held), 2) - 1])))

    openai_grader.handlers["chat"] = reply
    run_jobs()
    assert len(held) == 2 and held == [0, 0]  # no pooled connection checked out during either LLM call
    request = openai_grader.requests_to("chat")[0].body
    schema = request["response_format"]["json_schema"]
    assert schema["name"] == "rubric_verdicts" and schema["strict"] is True
    assert answer in request["messages"][-1]["content"]  # the answer travels as quoted data
    result = client.get(url, headers=student["headers"]).json()
    item = next(i for i in result["items"] if i["index"] == theory)
    assert result["status"] == "graded" and result["grader"] == "llm" and item["grader"] == "llm"
    assert item["points"][0] == {
        "point": item["points"][0]["point"],
        "met": True,
        "quote": "its own stack",
        "comment": "right",
    }
    assert item["score"] == round(1 / points, 4)
    assert item["source"]["page_url"].startswith("/documents/")


def test_llm_failure_falls_back_to_the_offline_grader(client, course_exam, openai_grader) -> None:
    student, url, theory, _ = _submit_theory(client, course_exam, "Bananas are yellow.")
    run_jobs()  # no chat reply queued: the fake answers 500 and the grader falls back offline
    result = client.get(url, headers=student["headers"]).json()
    assert result["status"] == "graded" and result["grader"] == "llm+offline"
    item = next(i for i in result["items"] if i["index"] == theory)
    assert item["grader"] == "offline" and item["score"] == 0.0


def test_submissions_reveals_and_exports_are_audited(client, course_exam) -> None:
    import logging

    from aiteacher import audit as audit_module

    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    logger = audit_module._get_logger()
    handler = Collect()
    logger.addHandler(handler)
    try:
        student = _student(client, course_exam)
        exam_id = course_exam["exam_id"]
        attempt = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()
        url = f"/exams/{exam_id}/attempts/{attempt['id']}/submit"
        client.post(url, headers=student["headers"])
        client.post(url, headers=student["headers"])
        client.get(f"/exams/{exam_id}/export?format=gift", headers=course_exam["academic"]["headers"])
        client.post(f"/exams/{exam_id}/reveal", headers=_student(client, course_exam)["headers"])
        practice = client.post(
            "/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 0, "course": "os-attempts"}
        ).json()["exam_id"]
        run_jobs()
        client.post(f"/exams/{practice}/reveal", headers=student["headers"])
        client.get(f"/exams/{practice}/export?format=qti", headers=_student(client, course_exam)["headers"])
    finally:
        logger.removeHandler(handler)
    seen = [(line["action"], line["outcome"], line["target"]) for line in lines]
    assert ("exam.attempt.submit", "ok", attempt["id"]) in seen
    assert ("exam.attempt.submit", "duplicate", attempt["id"]) in seen
    assert ("exam.export", "ok", exam_id) in seen
    assert ("exam.reveal", "denied", exam_id) in seen
    assert ("exam.reveal", "ok", practice) in seen
    assert ("exam.export", "denied", practice) in seen
    export_line = next(line for line in lines if line["action"] == "exam.export" and line["outcome"] == "ok")
    assert export_line["format"] == "gift" and export_line["actor"] == course_exam["academic"]["id"]
