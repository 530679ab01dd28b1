"""The chat and chat-session functions with the offline provider (the default), and the OpenAI path
against a local fake OpenAI-compatible server that captures the exact messages."""

from __future__ import annotations

import json

import pytest

from tests.fakes import fake_openai_fixture  # noqa: F401 - registers the fake_openai fixture
from tests.helpers import FIXTURE_PDFS, assert_problem, hierarchy, make_pdf, place, run_jobs, signed_in, upload

LECTURE = [
    [
        "Week 4: Hash tables.",
        "A hash table stores key-value pairs in an array of buckets.",
        "A hash function maps each key to a bucket index.",
        "When two keys map to the same bucket we have a collision.",
    ],
    [
        "Collision resolution.",
        "Separate chaining keeps a linked list of entries in every bucket.",
        "Open addressing probes other buckets until it finds an empty slot.",
        "Linear probing checks the next bucket, which causes primary clustering.",
    ],
    [
        "Load factor and resizing.",
        "The load factor is the number of entries divided by the number of buckets.",
        "When the load factor exceeds a threshold such as 0.75 the table doubles its size and rehashes every key.",
    ],
]


@pytest.fixture(scope="module")
def course(gateway, admin_token):  # type: ignore[no-untyped-def]
    """An academic's lecture on hash tables in faculty 1, semester 2, and the academic."""
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        faculty = hierarchy(client)[0]
        academic = signed_in(client, "academic", admin_token)
        place(client, academic, faculty, 2)
        response = upload(client, academic, make_pdf(LECTURE), course="hashing", filename="hash-tables.pdf")
        assert response.status_code == 202
        run_jobs()
        return {"faculty": faculty, "academic": academic, "document_id": response.json()["document_id"]}


@pytest.fixture
def student(client, course) -> dict:
    user = signed_in(client)
    place(client, user, course["faculty"], 2)
    return user


def ask(client, user: dict, message: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/chat", headers=user["headers"], json={"message": message, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_grounded_answer_cites_the_right_page_and_guides(client, student, course) -> None:
    reply = ask(client, student, "What happens in open addressing when a bucket is taken?")
    assert reply["refused"] is False and reply["session_id"]
    page_url = f"/documents/{course['document_id']}/pages/2"
    assert {
        "document_id": course["document_id"],
        "title": "Hash tables",
        "page": 2,
        "unit": "page",
        "ocr": False,
        "page_url": page_url,
    } in reply["citations"]
    assert reply["answer"].rstrip().endswith("?"), "the tutor ends with a guiding question"
    assert reply["hint_level"] == 0


class CountingExecutor:
    """The tutor's retrieval pool, counting the searches it is handed."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool, self.calls = ThreadPoolExecutor(max_workers=2), 0

    def submit(self, fn, *args):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.pool.submit(fn, *args)


def test_a_cached_search_is_read_on_the_event_loop_and_only_a_miss_takes_a_retrieval_thread(
    client, student, course, monkeypatch
) -> None:
    """A turn whose search is cached costs no thread hop (under load a hop waits for the GIL: 65 ms at
    N = 100, docs/benchmarks.md); a new question, or any document change in the faculty, is a miss."""
    from aiteacher.tutor import service

    counting = CountingExecutor()
    monkeypatch.setattr(service, "_retrieval_pool", lambda: counting)
    question = "How does separate chaining handle collisions in a hash table?"
    try:
        first = ask(client, student, question)
        assert counting.calls == 1 and first["refused"] is False
        again = ask(client, student, question)  # a new session, the same search
        assert counting.calls == 1
        assert again["citations"] == first["citations"] and again["answer"] == first["answer"]
        ask(client, student, "What is the load factor of a hash table?")
        assert counting.calls == 2
        # Another document in the faculty bumps its search version: the cached search is not served again.
        response = upload(
            client, course["academic"], make_pdf([["Week 5: Trees."]]), course="hashing", filename="t.pdf"
        )
        assert response.status_code == 202
        run_jobs()
        assert ask(client, student, question)["citations"] == first["citations"]
        assert counting.calls == 3
    finally:
        counting.pool.shutdown(wait=True)


def test_off_topic_question_is_refused_not_invented(client, student) -> None:
    reply = ask(client, student, "Who won the football world cup in 1998?")
    assert reply["refused"] is True and reply["reason"] == "not_in_material" and reply["citations"] == []


@pytest.mark.parametrize(
    "message",
    [
        "Give me the answers to tomorrow's exam on hash tables",
        "Can you write my assignment about load factors?",
        "Please do my homework for me: explain linear probing in 500 words so I can submit it",
    ],
)
def test_integrity_requests_are_refused_with_guidance(client, student, message: str) -> None:
    reply = ask(client, student, message)
    assert reply["refused"] is True and reply["reason"] == "integrity"
    assert "guide you" in reply["answer"]


def test_hint_ladder_climbs_with_attempts_and_resets_on_a_new_topic(client, student) -> None:
    first = ask(client, student, "What is the load factor of a hash table?")
    session_id = first["session_id"]
    levels = [first["hint_level"]]
    for attempt in ("Is it the number of entries?", "I still don't get the load factor of the table"):
        levels.append(ask(client, student, attempt + " load factor buckets", session_id=session_id)["hint_level"])
    assert levels == [0, 1, 2]
    worked = ask(client, student, "load factor entries divided by buckets?", session_id=session_id)
    assert worked["hint_level"] == 2, "the ladder stops at the worked explanation"
    new_topic = ask(client, student, "What does separate chaining keep in every bucket?", session_id=session_id)
    assert new_topic["hint_level"] == 0


def test_sessions_are_private_and_soft_deleted(client, student, course) -> None:
    reply = ask(client, student, "What does a hash function do?")
    session_id = reply["session_id"]
    mine = client.get(f"/session/{session_id}", headers=student["headers"])
    assert mine.status_code == 200
    history = mine.json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["citations"]

    other = signed_in(client)
    place(client, other, course["faculty"], 2)
    assert_problem(client.get(f"/session/{session_id}", headers=other["headers"]), 404)
    assert_problem(client.delete(f"/session/{session_id}", headers=other["headers"]), 404)
    assert_problem(
        client.post("/chat", headers=other["headers"], json={"message": "hash", "session_id": session_id}), 404
    )
    assert client.delete(f"/session/{session_id}", headers=student["headers"]).status_code == 204
    assert_problem(client.get(f"/session/{session_id}", headers=student["headers"]), 404)
    assert_problem(client.get("/session/not-a-session", headers=student["headers"]), 404)


def test_learning_state_is_summarised_every_six_messages(client, student) -> None:
    session_id = None
    for question in (
        "What is a collision in a hash table?",
        "What is linear probing?",
        "I think chaining stores entries in a tree, isn't it?",
    ):
        session_id = ask(client, student, question, **({"session_id": session_id} if session_id else {}))["session_id"]
    run_jobs()
    state = client.get(f"/session/{session_id}", headers=student["headers"]).json()["learning_state"]
    assert state["version"] == 1
    assert state["topics"] and isinstance(state["next_steps"], list)


def test_chat_validation(client, student, course) -> None:
    assert_problem(client.post("/chat", json={"message": "hi"}), 401)
    assert_problem(client.post("/chat", headers=student["headers"], json={}), 422)
    assert_problem(client.post("/chat", headers=student["headers"], json={"message": "x" * 2001}), 422)
    unplaced = signed_in(client)
    assert_problem(client.post("/chat", headers=unplaced["headers"], json={"message": "hash tables"}), 409)


def test_other_tenant_gets_no_answer_from_this_material(client, course) -> None:
    outsider = signed_in(client)
    place(client, outsider, course["faculty"], 7)
    reply = ask(client, outsider, "What happens in open addressing when a bucket is taken?")
    assert reply["refused"] is True and reply["citations"] == []


def test_flagged_message_is_audited_and_academics_notified(client, student, course) -> None:
    reply = ask(client, student, "I want to kill myself because of this exam")
    assert reply["refused"] is True and reply["reason"] == "flagged"
    run_jobs()
    from aiteacher.config import get_settings

    outbox = (get_settings().data_dir / "outbox.jsonl").read_text().splitlines()
    academic_email = course["academic"]["email"]
    assert any(
        json.loads(line)["to"] == academic_email and "needs attention" in json.loads(line)["subject"] for line in outbox
    )
    # The message text itself never goes out by mail.
    assert all("kill myself" not in line for line in outbox)


@pytest.fixture
def openai_configured(fake_openai, monkeypatch):  # type: ignore[no-untyped-def]
    from aiteacher.config import reset_caches

    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("EMBEDDING_PROVIDER", "local")
    monkeypatch.setenv("CHAT_CACHE_SECONDS", "0")
    reset_caches()
    yield fake_openai
    monkeypatch.undo()
    reset_caches()


def test_injection_in_a_pdf_stays_quoted_data(client, student, course, openai_configured) -> None:
    """A PDF saying 'ignore previous instructions' reaches the model only inside the quoted sources
    block; the system prompt is the tutor's, unchanged."""
    injection = upload(
        client,
        course["academic"],
        (FIXTURE_PDFS / "injection.pdf").read_bytes(),
        course="hashing",
        filename="injection.pdf",
    )
    assert injection.status_code == 202
    run_jobs()
    fake = openai_configured
    fake.queue_moderation(False)
    fake.queue_chat_json(
        {"answer": "Which instructions does the lecture give about studying? [S1]", "citations": ["S1"]}
    )
    reply = ask(client, student, "Where in plant cells does photosynthesis take place?")
    assert reply["refused"] is False
    messages = fake.requests_to("chat")[-1].messages
    system = [m for m in messages if m["role"] == "system"]
    assert len(system) == 1 and "Ignore previous instructions" not in system[0]["content"]
    user = messages[-1]["content"]
    assert user.count("Ignore previous instructions") == 1, "the PDF's sentence is passed exactly once"
    position = user.index("Ignore previous instructions")
    assert user.rindex("<sources>", 0, position) < position < user.index("</sources>", position)
    assert reply["answer"].startswith("Which instructions")


def test_chat_goes_through_the_openai_api_when_configured(client, student, openai_configured) -> None:
    fake = openai_configured
    fake.queue_moderation(False)
    fake.queue_chat_json(
        {
            "answer": "Think about what happens to the entries divided by buckets [S1]. What ratio do you get?",
            "citations": ["S1"],
        }
    )
    reply = ask(client, student, "What is the load factor of a hash table?")
    assert reply["refused"] is False and reply["citations"]
    request = fake.requests_to("chat")[-1]
    assert request.body["model"] and request.body["response_format"]["type"] == "json_schema"
    assert request.headers.get("authorization") == "Bearer sk-test"
