"""The exam job: retrieve the tenant's material, ask the LLM for items, keep only items whose key is
supported by their cited source and that are not near-duplicates, and top up until the requested
numbers are reached (a bounded number of rounds)."""

from __future__ import annotations

import logging
from typing import Any

from aiteacher.audit import audit

log = logging.getLogger("aiteacher.exams")
ROUNDS = 3
PASSAGES = 40


def _item_json(item: Any) -> dict[str, Any]:
    from aiteacher.llm import McqItem

    source = {"document_id": item.source.document_id, "page": item.source.page, "title": item.source.title}
    if isinstance(item, McqItem):
        return {"type": "mcq", "question": item.question, "options": list(item.options),
                "answer_index": item.answer_index, "explanation": item.explanation, "source": source}
    return {"type": "theory", "question": item.question, "model_answer": item.model_answer,
            "rubric": list(item.rubric), "source": source}


def valid_mcq(item: Any) -> bool:
    options = [option.strip().lower() for option in item.options]
    return (len(options) == 4 and len(set(options)) == 4 and all(options) and 0 <= item.answer_index < 4
            and bool(item.explanation.strip()) and bool(item.question.strip()))


def valid_theory(item: Any) -> bool:
    return bool(item.question.strip() and item.model_answer.strip() and item.rubric)


def generate_exam(exam_id: str) -> dict[str, Any]:
    from aiteacher.curriculum.search import Scope, retrieve
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam
    from aiteacher.llm import McqItem, Passage, extract_key_terms, get_llm, near_duplicate

    with transaction() as session:
        exam = session.get(Exam, exam_id)
        if exam is None:
            return {"exam_id": exam_id, "status": "missing"}
        if exam.status in ("ready", "failed"):
            return {"exam_id": exam_id, "status": exam.status, "skipped": True}
        exam.status = "generating"
        scope = Scope(exam.faculty_id, exam.semester_id, exam.course)
        want_mcq, want_theory, topic, difficulty = exam.num_mcq, exam.num_theory, exam.topic, exam.difficulty

    query = topic or exam_course_query(scope)
    results = retrieve(scope, query, PASSAGES)
    passages = [Passage(chunk_id=r["chunk_id"], document_id=r["document_id"], title=r["title"], page=r["page"],
                        text=r["text"], score=r["score"], course=r["course"]) for r in results]
    if not passages:
        return _finish(exam_id, [], "No course material matches this exam request yet; upload documents first.")

    pool = sorted({term for p in passages for term in extract_key_terms(p.text, limit=10)})
    llm = get_llm()
    kept: list[Any] = []
    dropped = 0
    from aiteacher.progress import Tracker

    progress = Tracker("exam", exam_id)
    progress.update("generating", 0, want_mcq + want_theory)
    for round_number in range(ROUNDS):
        missing_mcq = want_mcq - sum(isinstance(i, McqItem) for i in kept)
        missing_theory = want_theory - sum(not isinstance(i, McqItem) for i in kept)
        if missing_mcq <= 0 and missing_theory <= 0:
            break
        # Later rounds start from other passages so replacements are not the same items again.
        offset = (round_number * 7) % max(1, len(passages))
        ordered = passages[offset:] + passages[:offset]
        for item in llm.exam_items(ordered, num_mcq=max(0, missing_mcq), num_theory=max(0, missing_theory),
                                   topic=topic, difficulty=difficulty, distractor_pool=pool):
            is_mcq = isinstance(item, McqItem)
            if (is_mcq and missing_mcq <= 0) or (not is_mcq and missing_theory <= 0):
                continue
            structurally_ok = valid_mcq(item) if is_mcq else valid_theory(item)
            duplicate = any(near_duplicate(item.question, other.question) for other in kept)
            if not structurally_ok or duplicate or not llm.verify_item(item):
                dropped += 1
                continue
            kept.append(item)
            progress.update("generating", len(kept), want_mcq + want_theory)
            missing_mcq -= is_mcq
            missing_theory -= not is_mcq
    ordered_items = [i for i in kept if isinstance(i, McqItem)] + [i for i in kept if not isinstance(i, McqItem)]
    shortfall = (want_mcq + want_theory) - len(ordered_items)
    note = None
    if not ordered_items:
        note = "No question could be verified against the course material; try another topic or more material."
    elif shortfall > 0:
        note = f"{shortfall} question(s) could not be generated and verified from the available material."
    return _finish(exam_id, [_item_json(item) for item in ordered_items], note, dropped=dropped)


def exam_course_query(scope: Any) -> str:
    return f"key concepts and definitions of {scope.course}" if scope.course else "key concepts and definitions"


def _finish(exam_id: str, questions: list[dict[str, Any]], note: str | None, dropped: int = 0) -> dict[str, Any]:
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam
    from aiteacher.notifications import notify_exam_ready

    status = "ready" if questions else "failed"
    with transaction() as session:
        exam = session.get(Exam, exam_id)
        if exam is None:
            return {"exam_id": exam_id, "status": "missing"}
        exam.status, exam.questions, exam.error = status, questions, note
    audit("exam.generate", status, target=exam_id, questions=len(questions), dropped=dropped)
    notify_exam_ready(exam_id)
    return {"exam_id": exam_id, "status": status, "questions": len(questions), "dropped": dropped}


def generation_failed(job: Any, connection: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    if (getattr(job, "retries_left", 0) or 0) > 0 or not job.args:
        return
    log.error("exam %s failed: %s", job.args[0], exc_value)
    _finish(job.args[0], [], "Exam generation failed; please try again later.")


