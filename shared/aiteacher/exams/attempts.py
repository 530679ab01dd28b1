"""Exam attempts: start, save answers, submit (MCQs graded at once, theory answers in the grading job),
read the result, and the academic view (aggregates only)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.db import after_commit
from aiteacher.db.models import Exam, ExamAttempt, new_id
from aiteacher.enums import AttemptStatus, ExamStatus, Role
from aiteacher.errors import Conflict, Forbidden, NotFound, ValidationFailed
from aiteacher.exams import grading, repository
from aiteacher.exams.service import is_staff, keys_visible, strip_keys, visible_exam, with_source_link
from aiteacher.security.tokens import Claims

MAX_ATTEMPTS_PER_EXAM = 20
MAX_ANSWER_CHARS = 10_000
SCORE_BUCKETS = 10


def _own_attempt(session: Session, caller: Claims, exam: Exam, attempt_id: str) -> ExamAttempt:
    attempt = session.get(ExamAttempt, attempt_id)
    if attempt is None or attempt.exam_id != exam.id or attempt.user_id != caller.sub:
        raise NotFound("No such attempt")
    return attempt


def start_attempt(session: Session, caller: Claims, exam_id: str) -> tuple[dict[str, Any], bool]:
    """(the attempt, created?). A caller with an attempt in progress gets that one back."""
    exam = visible_exam(session, caller, exam_id)
    if caller.role != Role.STUDENT:
        raise Forbidden("Attempts are taken by students; academics and admins see the keys and the aggregates")
    if exam.status != ExamStatus.READY:
        raise Conflict("The exam is not ready yet", code="exam_not_ready")
    attempts = repository.user_attempts(session, exam.id, caller.sub)
    open_attempt = next((a for a in attempts if a.status == AttemptStatus.IN_PROGRESS), None)
    if open_attempt is not None:
        return attempt_view(session, caller, exam, open_attempt), False
    if len(attempts) >= MAX_ATTEMPTS_PER_EXAM:
        raise Conflict(f"At most {MAX_ATTEMPTS_PER_EXAM} attempts per exam", code="too_many_attempts")
    attempt = ExamAttempt(
        id=new_id(), exam_id=exam.id, user_id=caller.sub, status=AttemptStatus.IN_PROGRESS, answers={}, results=[]
    )
    session.add(attempt)
    session.flush()
    audit("exam.attempt.start", "ok", actor=caller.sub, target=attempt.id, exam_id=exam.id)
    return attempt_view(session, caller, exam, attempt), True


def _checked_answers(exam: Exam, answers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Answers keyed by question index, checked against the exam (an index or option out of range is 422)."""
    questions = exam.questions or []
    checked: dict[str, dict[str, Any]] = {}
    for answer in answers:
        index = answer["question"]
        if not 0 <= index < len(questions):
            raise ValidationFailed(f"Question {index} does not exist; this exam has {len(questions)} questions")
        question = questions[index]
        choice, text = answer.get("choice"), answer.get("text")
        if question["type"] == "mcq":
            if text is not None or choice is None or not 0 <= choice < len(question["options"]):
                raise ValidationFailed(
                    f"Question {index} is multiple choice: give a `choice` between 0 and {len(question['options']) - 1}"
                )
            checked[str(index)] = {"choice": choice}
        else:
            if choice is not None or text is None:
                raise ValidationFailed(f"Question {index} is a theory question: give a `text` answer")
            checked[str(index)] = {"text": text[:MAX_ANSWER_CHARS]}
    return checked


def save_answers(
    session: Session, caller: Claims, exam_id: str, attempt_id: str, answers: list[dict[str, Any]]
) -> dict[str, Any]:
    exam = visible_exam(session, caller, exam_id)
    attempt = _own_attempt(session, caller, exam, attempt_id)
    if attempt.status != AttemptStatus.IN_PROGRESS:
        raise Conflict("This attempt was submitted; its answers can no longer change", code="attempt_submitted")
    attempt.answers = {**(attempt.answers or {}), **_checked_answers(exam, answers)}
    session.flush()
    return attempt_view(session, caller, exam, attempt)


def submit_attempt(
    session: Session, caller: Claims, exam_id: str, attempt_id: str, answers: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Grade MCQs now; queue the theory answers for the grading job. Submitting twice changes nothing."""
    from aiteacher.exams.jobs import grade_attempt

    exam = visible_exam(session, caller, exam_id)
    attempt = _own_attempt(session, caller, exam, attempt_id)
    if attempt.status != AttemptStatus.IN_PROGRESS:
        audit("exam.attempt.submit", "duplicate", actor=caller.sub, target=attempt.id, exam_id=exam.id)
        return attempt_view(session, caller, exam, attempt)
    if answers:
        attempt.answers = {**(attempt.answers or {}), **_checked_answers(exam, answers)}
    saved = attempt.answers or {}
    results: list[dict[str, Any]] = []
    needs_job = False
    for index, question in enumerate(exam.questions or []):
        answer = saved.get(str(index))
        if question["type"] == "mcq":
            results.append(grading.grade_mcq(index, question, answer))
        elif answer and answer.get("text", "").strip():
            results.append(grading.pending_theory(index, question))
            needs_job = True
        else:  # nothing to read: graded now, by either grader the same way
            results.append(grading.grade_theory_offline(index, question, "", embedder=None))
    attempt.results = results
    attempt.submitted_at = datetime.now(UTC)
    if needs_job:
        attempt.status = AttemptStatus.GRADING
        attempt_key = attempt.id
        after_commit(session, lambda: grade_attempt.enqueue(attempt_key))
    else:
        finish(attempt, results, "instant")
    session.flush()
    audit(
        "exam.attempt.submit",
        "ok",
        actor=caller.sub,
        target=attempt.id,
        exam_id=exam.id,
        status=attempt.status,
        score=attempt.score,
    )
    return attempt_view(session, caller, exam, attempt)


def finish(attempt: ExamAttempt, results: list[dict[str, Any]], grader: str) -> None:
    attempt.results = results
    attempt.score, attempt.max_score = grading.total(results)
    attempt.status, attempt.grader, attempt.graded_at = AttemptStatus.GRADED, grader, datetime.now(UTC)


def read_attempt(session: Session, caller: Claims, exam_id: str, attempt_id: str) -> dict[str, Any]:
    exam = visible_exam(session, caller, exam_id)
    return attempt_view(session, caller, exam, _own_attempt(session, caller, exam, attempt_id))


def list_attempts(session: Session, caller: Claims, exam_id: str) -> dict[str, Any]:
    exam = visible_exam(session, caller, exam_id)
    rows = repository.user_attempts(session, exam.id, caller.sub, newest_first=True)
    return {"attempts": [_attempt_summary(a) for a in rows]}


def _attempt_summary(attempt: ExamAttempt) -> dict[str, Any]:
    percent = (
        round(100 * attempt.score / attempt.max_score, 1)
        if attempt.status == AttemptStatus.GRADED and attempt.score is not None and attempt.max_score
        else None
    )
    return {
        "id": attempt.id,
        "exam_id": attempt.exam_id,
        "status": attempt.status,
        "score": attempt.score if attempt.status == AttemptStatus.GRADED else None,
        "max_score": attempt.max_score,
        "percent": percent,
        "grader": attempt.grader,
        "created_at": attempt.created_at.isoformat(),
        "submitted_at": attempt.submitted_at.isoformat() if attempt.submitted_at else None,
        "graded_at": attempt.graded_at.isoformat() if attempt.graded_at else None,
    }


def attempt_view(session: Session, caller: Claims, exam: Exam, attempt: ExamAttempt) -> dict[str, Any]:
    """The attempt with its questions; keys and per-item results only once it is submitted."""
    show_keys = attempt.status != AttemptStatus.IN_PROGRESS or keys_visible(session, caller, exam)
    questions = [with_source_link(q) for q in exam.questions or []]
    if not show_keys:
        questions = [strip_keys(q) for q in questions]
    answers = [
        {"question": int(index), **answer}
        for index, answer in sorted((attempt.answers or {}).items(), key=lambda pair: int(pair[0]))
    ]
    return {
        **_attempt_summary(attempt),
        "questions": questions,
        "answers": answers,
        "items": attempt.results if attempt.status != AttemptStatus.IN_PROGRESS else [],
    }


def exam_statistics(session: Session, caller: Claims, exam_id: str) -> dict[str, Any]:
    """Aggregates over the submitted attempts (never one student's answers): attempts, score distribution,
    per-item difficulty (share correct; mean score for theory) and the most chosen wrong MCQ option."""
    exam = visible_exam(session, caller, exam_id)
    if not is_staff(caller, exam):
        raise Forbidden("Exam statistics are for academics and admins")
    attempts = repository.graded_attempts(session, exam.id)
    buckets = [0] * SCORE_BUCKETS
    for attempt in attempts:
        share = (attempt.score or 0.0) / attempt.max_score if attempt.max_score else 0.0
        buckets[min(SCORE_BUCKETS - 1, int(share * SCORE_BUCKETS))] += 1
    items = []
    for index, question in enumerate(exam.questions or []):
        results = [r for a in attempts for r in a.results or [] if r.get("index") == index]
        entry: dict[str, Any] = {
            "index": index,
            "type": question["type"],
            "question": question["question"],
            "answered": len(results),
        }
        if question["type"] == "mcq":
            entry["share_correct"] = (
                round(sum(bool(r["correct"]) for r in results) / len(results), 4) if results else None
            )
            wrong = Counter(r["chosen_index"] for r in results if not r["correct"] and r["chosen_index"] is not None)
            if wrong:
                option, count = min(wrong.items(), key=lambda pair: (-pair[1], pair[0]))
                entry["most_chosen_wrong_option"] = {
                    "index": option,
                    "option": question["options"][option],
                    "count": count,
                }
            else:
                entry["most_chosen_wrong_option"] = None
        else:
            scores = [r["score"] or 0.0 for r in results]
            entry["share_correct"] = round(sum(s >= 0.999 for s in scores) / len(scores), 4) if scores else None
            entry["mean_score"] = round(sum(scores) / len(scores), 4) if scores else None
        items.append(entry)
    width = 100 // SCORE_BUCKETS
    distribution = [
        {"from_percent": i * width, "to_percent": (i + 1) * width, "attempts": count} for i, count in enumerate(buckets)
    ]
    return {
        "exam_id": exam.id,
        "attempts": len(attempts),
        "students": len({a.user_id for a in attempts}),
        "mean_percent": round(
            100 * sum((a.score or 0) / a.max_score for a in attempts if a.max_score) / len(attempts), 1
        )
        if attempts
        else None,
        "score_distribution": distribution,
        "items": items,
    }
