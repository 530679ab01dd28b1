"""The exam job: retrieve the tenant's material, ask the LLM for items, keep only items whose key is
supported by their cited source and that are not near-duplicates, and top up until the requested
numbers are reached (a bounded number of rounds)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiteacher.audit import audit
from aiteacher.enums import EXAM_DONE, AttemptStatus, ExamStatus
from aiteacher.jobs import StatusGate, job

if TYPE_CHECKING:
    from aiteacher.access import SearchScope
    from aiteacher.exams.blueprint import Slot
    from aiteacher.llm import McqItem, TheoryItem

    Item = McqItem | TheoryItem

log = logging.getLogger("aiteacher.exams")
ROUNDS = 3
PASSAGES = 40


def _item_json(item: Item, slot: Slot, bloom: str) -> dict[str, Any]:
    from aiteacher.llm import McqItem

    source = {"document_id": item.source.document_id, "page": item.source.page, "title": item.source.title}
    labels = {"bloom": bloom, "difficulty": slot.difficulty}
    if isinstance(item, McqItem):
        return {
            "type": "mcq",
            "question": item.question,
            "options": list(item.options),
            "answer_index": item.answer_index,
            "explanation": item.explanation,
            "source": source,
            **labels,
        }
    return {
        "type": "theory",
        "question": item.question,
        "model_answer": item.model_answer,
        "rubric": list(item.rubric),
        "source": source,
        **labels,
    }


def valid_mcq(item: McqItem) -> bool:
    options = [option.strip().lower() for option in item.options]
    return (
        len(options) == 4
        and len(set(options)) == 4
        and all(options)
        and 0 <= item.answer_index < 4
        and bool(item.explanation.strip())
        and bool(item.question.strip())
    )


def valid_theory(item: TheoryItem) -> bool:
    return bool(item.question.strip() and item.model_answer.strip() and item.rubric)


def _material(exam_id: str) -> dict[str, Any] | None:
    """Phase 1, a short transaction: the request, and the ready documents the exam may draw on."""
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam
    from aiteacher.exams import repository

    with transaction() as session:
        exam = session.get(Exam, exam_id)
        if exam is None:  # deleted since the gate looked
            return {"status": "missing"}
        exam.status = ExamStatus.GENERATING
        blueprint = dict(exam.blueprint or {})
        ranges = list(blueprint.get("sources") or [])
        documents = repository.source_documents(session, exam, [entry["document_id"] for entry in ranges])
        return {
            "status": "generating",
            "faculty_id": exam.faculty_id,
            "semester_id": exam.semester_id,
            "course": exam.course,
            "num_mcq": exam.num_mcq,
            "num_theory": exam.num_theory,
            "topic": exam.topic,
            "difficulty": exam.difficulty,
            "blueprint": blueprint,
            "ranges": ranges,
            "documents": documents,
        }


@job(
    queue="exams",
    timeout=lambda settings: settings.exam_job_timeout_seconds,
    job_id=lambda exam_id: f"exam-{exam_id}",
    gate=StatusGate("Exam", "exam_id", done=EXAM_DONE),
)
def generate_exam(exam_id: str) -> dict[str, Any]:
    """Three phases: a short read, then retrieval and every LLM call with no connection checked out, then a
    short write (`_finish`)."""
    from collections import Counter

    from aiteacher.curriculum.search import Scope
    from aiteacher.exams.blueprint import plan_slots, spread_passages
    from aiteacher.llm import McqItem, extract_key_terms, get_llm, near_duplicate

    request = _material(exam_id)
    if request is None or request["status"] != ExamStatus.GENERATING:
        return {"exam_id": exam_id, **(request or {})}
    scope = Scope(request["faculty_id"], request["semester_id"], request["course"])
    topic = request["topic"]
    query = topic or exam_course_query(scope)
    results = spread_passages(scope.filters(), request["documents"], query, request["ranges"])[: PASSAGES * 2]
    passages = [hit.passage() for hit in results]
    if not passages:
        return _finish(exam_id, [], "No course material matches this exam request yet; upload documents first.")

    slots = plan_slots(request["num_mcq"], request["num_theory"], request["blueprint"], request["difficulty"])
    pool = sorted({term for p in passages for term in extract_key_terms(p.text, limit=10)})
    llm = get_llm()
    writes_bloom = getattr(llm, "name", "") == "openai"
    kept: list[tuple[Item, Slot, str]] = []  # (item, slot, recorded Bloom level)
    dropped = 0
    from aiteacher.progress import Tracker

    asked = request["num_mcq"] + request["num_theory"]
    progress = Tracker("exam", exam_id)
    progress.update("generating", 0, asked)
    rotation = 0
    for group_slots in _requests(slots):
        want_mcq = sum(slot.kind == "mcq" for slot in group_slots)
        want_theory = len(group_slots) - want_mcq
        difficulty = group_slots[0].difficulty
        # The LLM is asked for the levels; the offline generator writes cloze MCQs (remember) and "explain"
        # items (understand) whatever was asked, and each item records what it really is.
        asked_topic = _bloom_topic(topic, group_slots) if writes_bloom else topic
        mine: list[Item] = []
        for _round in range(ROUNDS):
            missing_mcq = want_mcq - sum(isinstance(i, McqItem) for i in mine)
            missing_theory = want_theory - sum(not isinstance(i, McqItem) for i in mine)
            if missing_mcq <= 0 and missing_theory <= 0:
                break
            # Each request starts from other passages, so groups and top-up rounds cover other pages.
            offset = (rotation * 7) % max(1, len(passages))
            rotation += 1
            ordered = passages[offset:] + passages[:offset]
            for item in llm.exam_items(
                ordered,
                num_mcq=max(0, missing_mcq),
                num_theory=max(0, missing_theory),
                topic=asked_topic,
                difficulty=difficulty,
                distractor_pool=pool,
            ):
                is_mcq = isinstance(item, McqItem)
                if (is_mcq and missing_mcq <= 0) or (not is_mcq and missing_theory <= 0):
                    continue
                structurally_ok = valid_mcq(item) if isinstance(item, McqItem) else valid_theory(item)
                duplicate = any(
                    near_duplicate(item.question, other.question) for other in [*mine, *(k[0] for k in kept)]
                )
                if not structurally_ok or duplicate or not llm.verify_item(item):
                    dropped += 1
                    continue
                mine.append(item)
                progress.update("generating", len(kept) + len(mine), asked)
                missing_mcq -= is_mcq
                missing_theory -= not is_mcq
        free = list(group_slots)
        for item in mine:
            kind = "mcq" if isinstance(item, McqItem) else "theory"
            slot = next(s for s in free if s.kind == kind)
            free.remove(slot)
            recorded = slot.bloom if writes_bloom else ("remember" if kind == "mcq" else "understand")
            kept.append((item, slot, recorded))
    kept.sort(key=lambda entry: not isinstance(entry[0], McqItem))  # MCQs first, stable
    shortfall = (request["num_mcq"] + request["num_theory"]) - len(kept)
    notes = []
    if not kept:
        notes.append("No question could be verified against the course material; try another topic or more material.")
    elif shortfall > 0:
        notes.append(f"{shortfall} question(s) could not be generated and verified from the available material.")
    relabelled = sum(1 for item, slot, recorded in kept if recorded != slot.bloom)
    if relabelled:
        notes.append(
            f"{relabelled} item(s) record a Bloom level other than the blueprint asked: the offline "
            f"generator writes remember (cloze MCQ) and understand (explain) items only."
        )
    questions = [_item_json(item, slot, recorded) for item, slot, recorded in kept]
    report = {
        "pages_covered": sorted({(q["source"]["document_id"], q["source"]["page"]) for q in questions}),
        "bloom": dict(Counter(q["bloom"] for q in questions)),
        "difficulty": dict(Counter(q["difficulty"] for q in questions)),
    }
    return _finish(exam_id, questions, " ".join(notes) or None, dropped=dropped, report=report)


def _requests(slots: list[Slot]) -> list[list[Slot]]:
    """Slots grouped into generation requests: per difficulty, the i-th Bloom level of the MCQs paired with
    the i-th Bloom level of the theory items, so an exam without a blueprint is one request."""
    from itertools import zip_longest

    requests: list[list[Slot]] = []
    nothing: list[Slot] = []
    for difficulty in dict.fromkeys(slot.difficulty for slot in slots):
        by_kind = {
            kind: [
                [s for s in slots if (s.kind, s.difficulty, s.bloom) == (kind, difficulty, bloom)]
                for bloom in dict.fromkeys(s.bloom for s in slots if (s.kind, s.difficulty) == (kind, difficulty))
            ]
            for kind in ("mcq", "theory")
        }
        for mcq, theory in zip_longest(by_kind["mcq"], by_kind["theory"], fillvalue=nothing):
            requests.append([*mcq, *theory])
    return requests


def _bloom_topic(topic: str | None, group: list[Slot]) -> str:
    from aiteacher.exams.blueprint import BLOOM_HINTS

    parts = []
    for kind, label in (("mcq", "multiple-choice items"), ("theory", "theory items")):
        levels = sorted({slot.bloom for slot in group if slot.kind == kind})
        parts += [f"{label} at Bloom level {level} ({BLOOM_HINTS[level]})" for level in levels]
    return f"{topic or 'the course material'}; write " + "; ".join(parts)


def exam_course_query(scope: SearchScope) -> str:
    return f"key concepts and definitions of {scope.course}" if scope.course else "key concepts and definitions"


def _finish(
    exam_id: str,
    questions: list[dict[str, Any]],
    note: str | None,
    dropped: int = 0,
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam
    from aiteacher.notifications import notify_exam_ready

    status = ExamStatus.READY if questions else ExamStatus.FAILED
    with transaction() as session:
        exam = session.get(Exam, exam_id)
        if exam is None:
            return {"exam_id": exam_id, "status": "missing"}
        exam.status, exam.questions, exam.error = status, questions, note
        if report is not None:
            exam.blueprint = {
                **(exam.blueprint or {}),
                "report": {
                    **report,
                    "pages_covered": [{"document_id": d, "page": p} for d, p in report["pages_covered"]],
                },
            }
    audit("exam.generate", status, target=exam_id, questions=len(questions), dropped=dropped)
    notify_exam_ready(exam_id)
    return {"exam_id": exam_id, "status": status, "questions": len(questions), "dropped": dropped}


@generate_exam.on_failure
def _generation_failed(exam_id: str, reason: str) -> None:
    _finish(exam_id, [], "Exam generation failed; please try again later.")


generation_failed = generate_exam.failed  # the callback path that jobs enqueued before `aiteacher.jobs` name


# --- grading -------------------------------------------------------------------------------------
@job(
    queue="exams",
    timeout=lambda settings: settings.exam_job_timeout_seconds,
    job_id=lambda attempt_id: f"grade-{attempt_id}",
    gate=StatusGate("ExamAttempt", "attempt_id", only=frozenset({AttemptStatus.GRADING})),
)
def grade_attempt(attempt_id: str, *, force_offline: bool = False) -> dict[str, Any]:
    """Grade the theory answers of a submitted attempt. Three phases, so no pooled connection is held while
    the LLM (or the embedder) works: a short read, the grading, a short write."""
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam, ExamAttempt

    with transaction(read_only=True) as session:
        attempt = session.get(ExamAttempt, attempt_id)
        if attempt is None:  # deleted since the gate looked
            return {"attempt_id": attempt_id, "status": "missing", "skipped": True}
        exam = session.get(Exam, attempt.exam_id)
        questions = list(exam.questions or []) if exam is not None else []
        answers = dict(attempt.answers or {})
        results = [dict(result) for result in attempt.results or []]

    graded, grader = _grade_pending(questions, answers, results, force_offline=force_offline)

    from aiteacher.exams.attempts import finish

    with transaction() as session:
        attempt = session.get(ExamAttempt, attempt_id)
        if attempt is None or attempt.status != AttemptStatus.GRADING:  # graded meanwhile (a duplicate job)
            return {"attempt_id": attempt_id, "status": getattr(attempt, "status", "missing"), "skipped": True}
        finish(attempt, graded, grader)
        score, max_score, user_id, exam_id = attempt.score, attempt.max_score, attempt.user_id, attempt.exam_id
    audit(
        "exam.attempt.graded",
        "ok",
        actor=user_id,
        target=attempt_id,
        exam_id=exam_id,
        grader=grader,
        score=score,
        max_score=max_score,
    )
    return {"attempt_id": attempt_id, "status": "graded", "grader": grader, "score": score}


def _grade_pending(
    questions: list[dict[str, Any]], answers: dict[str, Any], results: list[dict[str, Any]], *, force_offline: bool
) -> tuple[list[dict[str, Any]], str]:
    from aiteacher.exams import grading
    from aiteacher.llm import LLMError, get_llm

    provider = None if force_offline else get_llm()
    use_llm = provider is not None and getattr(provider, "name", "") == "openai"
    embedder = None
    grader = "llm" if use_llm else "offline"
    graded = []
    for result in results:
        if result.get("status") != "pending":
            graded.append(result)
            continue
        index = result["index"]
        question = questions[index]
        text = (answers.get(str(index)) or {}).get("text", "")
        item = None
        if use_llm:
            try:
                item = grading.grade_theory_llm(index, question, text, provider)
            except LLMError as exc:
                log.warning("LLM grading of item %s failed (%s); grading offline", index, exc)
                grader = "llm+offline"
        if item is None:
            if embedder is None:
                from aiteacher.embeddings import get_embedder

                embedder = get_embedder()
            item = grading.grade_theory_offline(index, question, text, embedder)
        graded.append(item)
    return graded, grader


@grade_attempt.on_failure
def _grading_failed(attempt_id: str, reason: str) -> None:
    """Retries exhausted: grade offline, so an attempt never stays `grading` for ever."""
    log.warning("grading attempt %s offline", attempt_id)
    grade_attempt(attempt_id, force_offline=True)


grading_failed = grade_attempt.failed  # the callback path that jobs enqueued before `aiteacher.jobs` name
