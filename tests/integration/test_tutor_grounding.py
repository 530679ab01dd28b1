"""The grounding gate's defaults, through POST /chat, over real course material (../shared/eval's three
OpenStax excerpts): questions the material answers get an answer citing their page; near-topic questions it
does not answer are refused. The questions asked here are those the previous defaults answered (share of
topic words 0.5 at a score of 0.36-0.50 once retrieval indexed chunks with their titles and sections); the
defaults are the consensus of the leave-one-domain-out calibration in bench/bench_grounding.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_EVAL
from tests.helpers import hierarchy, place, run_jobs, signed_in, upload
from tests.integration.test_tutor import ask

UNANSWERABLE = json.loads((Path(__file__).parents[2] / "bench/data/grounding_unanswerable.json").read_text())
ANSWERABLE = json.loads((SHARED_EVAL / "questions.json").read_text()) if SHARED_EVAL.is_dir() else []
ANSWERED_BY_THE_OLD_DEFAULTS = {
    "What is cognitive dissonance?",
    "What are the Big Five personality traits?",
    "How does Hobbes describe the state of nature in Leviathan?",
    "What is the role of a central bank in setting monetary policy?",
    "What is realism in international relations theory?",
    "What is the Westphalian idea of state sovereignty?",
    "What is the difference between a nation and a state?",
    "What is the function of a free press in holding governments to account?",
}
COURSE = "eval-grounding"

pytestmark = pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="../shared/eval is not next to this checkout")


@pytest.fixture(scope="module")
def material(gateway, admin_token) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from tests.conftest import new_client_ip

    with TestClient(gateway, headers={"X-Forwarded-For": new_client_ip()}) as client:
        faculty = hierarchy(client)[0]
        academic = signed_in(client, "academic", admin_token)
        semester = max(s["number"] for s in faculty["semesters"])
        place(client, academic, faculty, semester)
        documents = {}
        for pdf in sorted({q["pdf"] for q in ANSWERABLE}):
            reply = upload(client, academic, (SHARED_EVAL / pdf).read_bytes(), course=COURSE, filename=pdf)
            assert reply.status_code == 202, reply.text
            documents[pdf] = reply.json()["document_id"]
        run_jobs()
        student = signed_in(client)
        place(client, student, faculty, semester)
        return {"student": student, "documents": documents}


def test_near_topic_questions_the_material_does_not_answer_are_refused(client, material) -> None:
    asked = [q for q in UNANSWERABLE["questions"] if q["question"] in ANSWERED_BY_THE_OLD_DEFAULTS]
    assert len(asked) == len(ANSWERED_BY_THE_OLD_DEFAULTS)
    answered = []
    for question in asked:
        reply = ask(client, material["student"], question["question"], course=COURSE)
        if not (reply["refused"] and reply["reason"] == "not_in_material"):
            answered.append((question["question"], [c["page"] for c in reply["citations"]]))
    assert answered == []


def test_questions_the_material_answers_cite_their_page(client, material) -> None:
    missed = []
    for question in ANSWERABLE[::3]:  # every third: one in each stretch of every excerpt
        reply = ask(client, material["student"], question["question"], course=COURSE)
        cited = {(c["document_id"], c["page"]) for c in reply["citations"]}
        if reply["refused"] or (material["documents"][question["pdf"]], question["page"]) not in cited:
            missed.append((question["question"], reply["reason"], sorted(cited)))
    assert missed == []
