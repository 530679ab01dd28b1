"""The offline theory grader: rubric coverage (key terms + similarity to one answer sentence with the local
embedder), reproducible, with partial credit, and no credit for off-topic, vague or contradicting answers."""

from __future__ import annotations

import pytest

from aiteacher.exams.grading import grade_mcq, grade_theory_offline

POINTS = [
    "A thread is the smallest unit of execution that the operating system scheduler manages.",
    "Threads of one process share the heap but each thread has its own stack.",
]
QUESTION = {
    "type": "theory",
    "question": "Explain what a thread is.",
    "model_answer": " ".join(POINTS),
    "rubric": POINTS,
    "source": {"document_id": "doc-1", "page": 1, "title": "OS"},
}


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from aiteacher.embeddings import LocalMiniLMEmbedder

    return LocalMiniLMEmbedder()


def grade(embedder, answer: str) -> dict:  # type: ignore[no-untyped-def]
    return grade_theory_offline(0, QUESTION, answer, embedder)


def test_the_model_answer_meets_every_point_with_a_quote(embedder) -> None:  # type: ignore[no-untyped-def]
    result = grade(embedder, QUESTION["model_answer"])
    assert result["score"] == 1.0 and all(p["met"] and p["quote"] in QUESTION["model_answer"] for p in result["points"])
    assert result["source"]["page_url"] == "/documents/doc-1/pages/1"


def test_same_answer_same_grade(embedder) -> None:  # type: ignore[no-untyped-def]
    answer = "The scheduler manages threads, the smallest unit of execution. They share the heap."
    assert grade(embedder, answer) == grade(embedder, answer)


def test_an_answer_covering_one_point_gets_half_and_is_told_what_is_missing(embedder) -> None:  # type: ignore[no-untyped-def]
    result = grade(embedder, "A thread is the smallest unit the scheduler manages.")
    assert result["score"] == 0.5 and [p["met"] for p in result["points"]] == [True, False]
    assert result["feedback"]["missing"] == [f"Missing or unclear: {POINTS[1]}"]


def test_a_paraphrase_earns_partial_credit(embedder) -> None:  # type: ignore[no-untyped-def]
    result = grade(
        embedder, "All threads inside a program use the same heap memory, yet every one keeps a private call stack."
    )
    assert result["points"][1]["met"] and result["score"] == 0.5


@pytest.mark.parametrize(
    "answer",
    [
        "Bananas are yellow and grow in warm places.",
        "Threads are a concept in operating systems that are important.",
        "",
        "   ",
    ],
)
def test_off_topic_vague_or_empty_answers_earn_nothing(embedder, answer: str) -> None:  # type: ignore[no-untyped-def]
    result = grade(embedder, answer)
    assert result["score"] == 0.0 and not result["feedback"]["right"]


def test_a_negated_point_is_not_met(embedder) -> None:  # type: ignore[no-untyped-def]
    result = grade(
        embedder,
        "A thread is not the smallest unit of execution that the scheduler manages. Threads "
        "of one process never share the heap.",
    )
    assert result["score"] == 0.0 and all(p["polarity_mismatch"] for p in result["points"])
    assert result["feedback"]["missing"][0].startswith("Your answer seems to contradict")


def test_mcq_feedback_names_the_key_and_the_page() -> None:
    question = {
        "type": "mcq",
        "question": "q",
        "options": ["a", "b", "c", "d"],
        "answer_index": 2,
        "explanation": "because",
        "source": {"document_id": "d", "page": 4, "title": "T"},
    }
    wrong = grade_mcq(0, question, {"choice": 1})
    assert wrong["score"] == 0.0 and "“c”" in wrong["feedback"]["missing"][0] and "p. 4" in wrong["feedback"]["review"]
    assert grade_mcq(0, question, {"choice": 2})["correct"] is True
    assert grade_mcq(0, question, None)["feedback"]["missing"][0].startswith("No option chosen")
