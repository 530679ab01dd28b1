"""Exam blueprints: difficulty mix and Bloom levels per item, documents and page ranges to cover, items
spread over the material; bad blueprints are refused."""

from __future__ import annotations

import pytest

from aiteacher.exams.blueprint import allocate, plan_slots
from tests.fakes import fake_openai_fixture  # noqa: F401 - registers the fake_openai fixture
from tests.helpers import assert_problem, hierarchy, make_pdf, place, run_jobs, signed_in, upload
from tests.integration.test_exams import LECTURE

NETWORKS = [
    [
        "Networking basics.",
        "A router forwards packets between networks using a routing table.",
        "A switch forwards frames inside one local network using MAC addresses.",
        "The Domain Name System translates host names into IP addresses.",
    ],
    [
        "Transport protocols.",
        "The Transmission Control Protocol provides reliable ordered delivery of a byte stream.",
        "The User Datagram Protocol sends independent datagrams without delivery guarantees.",
        "Congestion control slows a sender down when the network drops packets.",
    ],
]


@pytest.fixture(scope="module")
def material(gateway, admin_token):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        faculty = hierarchy(client)[0]
        academic = signed_in(client, "academic", admin_token)
        place(client, academic, faculty, 7)
        ids = []
        for pages, name in ((LECTURE, "os.pdf"), (NETWORKS, "net.pdf")):
            response = upload(client, academic, make_pdf(pages), course="systems-bp", filename=name)
            assert response.status_code == 202
            ids.append(response.json()["document_id"])
        run_jobs()
        other = signed_in(client, "academic", admin_token)
        place(client, other, hierarchy(client)[1], 7)
        foreign = upload(client, other, make_pdf(NETWORKS), course="systems-bp", filename="foreign.pdf")
        run_jobs()
        return {
            "faculty": faculty,
            "academic": academic,
            "os": ids[0],
            "net": ids[1],
            "foreign": foreign.json()["document_id"],
            "semester_id": next(s["id"] for s in faculty["semesters"] if s["number"] == 7),
        }


def _generate(client, material, **body):  # type: ignore[no-untyped-def]
    response = client.post(
        "/generate",
        headers=material["academic"]["headers"],
        json={"course": "systems-bp", "semester_id": material["semester_id"], **body},
    )
    assert response.status_code == 202, response.text
    run_jobs()
    exam = client.get(f"/exams/{response.json()['exam_id']}", headers=material["academic"]["headers"]).json()
    assert exam["status"] == "ready", exam
    return exam


def test_page_ranges_limit_the_material_and_every_item_records_bloom_level_and_source(client, material) -> None:
    exam = _generate(
        client,
        material,
        num_mcq=3,
        num_theory=1,
        blueprint={"sources": [{"document_id": material["os"], "first_page": 2, "last_page": 3}]},
    )
    for question in exam["questions"]:
        assert question["source"]["document_id"] == material["os"] and question["source"]["page"] in (2, 3)
        assert question["bloom"] in ("remember", "understand", "apply", "analyse")
        assert question["difficulty"] in ("easy", "medium", "hard")
        assert question["source"]["page_url"] == f"/documents/{material['os']}/pages/{question['source']['page']}"
    covered = exam["blueprint"]["report"]["pages_covered"]
    assert {entry["page"] for entry in covered} <= {2, 3} and len(covered) == 2  # both pages, not one


def test_items_spread_over_every_document_of_the_course(client, material) -> None:
    exam = _generate(client, material, num_mcq=4, num_theory=0)
    documents = {q["source"]["document_id"] for q in exam["questions"]}
    pages = {(q["source"]["document_id"], q["source"]["page"]) for q in exam["questions"]}
    assert documents == {material["os"], material["net"]} and len(pages) == 4


def test_difficulty_mix_and_bloom_levels_are_recorded_per_item(client, material) -> None:
    exam = _generate(
        client,
        material,
        num_mcq=2,
        num_theory=2,
        blueprint={"difficulty": {"easy": 1, "hard": 1}, "bloom": {"remember": 1, "understand": 1, "analyse": 2}},
    )
    difficulties = sorted(q["difficulty"] for q in exam["questions"])
    assert difficulties == ["easy", "easy", "hard", "hard"]
    # The offline generator writes remember (cloze MCQ) and understand items, and says so honestly.
    assert [q["bloom"] for q in exam["questions"]] == ["remember", "remember", "understand", "understand"]
    assert "Bloom level" in (exam["error"] or "")
    assert exam["blueprint"]["bloom"] == {"remember": 1, "understand": 1, "analyse": 2}


@pytest.mark.parametrize(
    "blueprint",
    [
        {"bloom": {"create": 1}},
        {"bloom": {"remember": 0}},
        {"difficulty": {"easy": -1}},
        {"difficulty": {"easy": 10**6}},
        {"sources": [{"document_id": "x", "first_page": 3, "last_page": 2}]},
        {"sources": [{"document_id": "x", "first_page": 0}]},
        {"sources": [{"document_id": ""}]},
        {"sources": [{"document_id": "x"}] * 21},
        {"unknown": 1},
        {"bloom": "remember"},
    ],
)
def test_malformed_blueprints_are_refused(client, material, admin_token, blueprint) -> None:  # type: ignore[no-untyped-def]
    academic = signed_in(client, "academic", admin_token)  # its own generation budget (10 an hour)
    place(client, academic, material["faculty"], 7)
    response = client.post(
        "/generate",
        headers=academic["headers"],
        json={"num_mcq": 1, "num_theory": 0, "course": "systems-bp", "blueprint": blueprint},
    )
    assert_problem(response, 422)


def test_blueprint_documents_must_be_the_callers_material(client, material) -> None:
    for sources in (
        [{"document_id": material["foreign"]}],
        [{"document_id": "00000000-0000-0000-0000-000000000000"}],
        [{"document_id": material["os"], "last_page": 99}],
    ):
        response = client.post(
            "/generate",
            headers=material["academic"]["headers"],
            json={
                "num_mcq": 1,
                "num_theory": 0,
                "course": "systems-bp",
                "semester_id": material["semester_id"],
                "blueprint": {"sources": sources},
            },
        )
        assert_problem(response, 422, "validation_error")


def test_allocation_follows_the_weights_and_mcqs_take_the_lower_bloom_levels() -> None:
    assert allocate({"easy": 1, "medium": 2, "hard": 1}, 4, ("easy", "medium", "hard")) == [
        "easy",
        "medium",
        "medium",
        "hard",
    ]
    assert allocate({"easy": 1, "hard": 1}, 3, ("easy", "medium", "hard")) == ["easy", "easy", "hard"]
    slots = plan_slots(2, 2, {"bloom": {"remember": 1, "apply": 1, "analyse": 2}}, None)
    assert [(s.kind, s.bloom) for s in slots] == [
        ("mcq", "remember"),
        ("mcq", "apply"),
        ("theory", "analyse"),
        ("theory", "analyse"),
    ]
    assert [s.difficulty for s in plan_slots(1, 1, None, "hard")] == ["hard", "hard"]
    assert [(s.kind, s.bloom) for s in plan_slots(1, 1, None, None)] == [("mcq", "remember"), ("theory", "understand")]


def test_the_llm_is_asked_for_the_blueprints_bloom_levels_and_items_record_them(
    client, material, admin_token, fake_openai, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from aiteacher.config import reset_caches

    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("EMBEDDING_PROVIDER", "local")
    reset_caches()
    try:
        fake_openai.queue_chat_json(
            {
                "mcq": [
                    {
                        "question": "A process needs a lock another holds; which condition of deadlock is this?",
                        "options": ["hold and wait", "round robin", "thrashing", "paging"],
                        "answer_index": 0,
                        "explanation": "Deadlock requires hold and wait.",
                        "source_id": "S1",
                    }
                ],
                "theory": [
                    {
                        "question": "Analyse how the four deadlock conditions depend on each other.",
                        "model_answer": "All four must hold together.",
                        "rubric": ["all four are needed"],
                        "source_id": "S1",
                    }
                ],
            }
        )
        fake_openai.queue_chat_json({"supported": True, "reason": "stated"})
        fake_openai.queue_chat_json({"supported": True, "reason": "stated"})
        academic = signed_in(client, "academic", admin_token)
        place(client, academic, material["faculty"], 7)
        exam_id = client.post(
            "/generate",
            headers=academic["headers"],
            json={
                "num_mcq": 1,
                "num_theory": 1,
                "course": "systems-bp",
                "semester_id": material["semester_id"],
                "blueprint": {"bloom": {"apply": 1, "analyse": 1}, "difficulty": {"hard": 1}},
            },
        ).json()["exam_id"]
        run_jobs()
        exam = client.get(f"/exams/{exam_id}", headers=academic["headers"]).json()
    finally:
        monkeypatch.undo()
        reset_caches()
    generation = fake_openai.requests_to("chat")[0]
    request_block = generation.messages[-1]["content"]
    assert "Bloom level apply" in request_block and "Bloom level analyse" in request_block
    assert '"difficulty": "hard"' in request_block
    assert exam["status"] == "ready", exam
    assert [(q["type"], q["bloom"], q["difficulty"]) for q in exam["questions"]] == [
        ("mcq", "apply", "hard"),
        ("theory", "analyse", "hard"),
    ]
    assert exam["error"] is None
