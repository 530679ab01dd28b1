"""Exams: request (tenant from the caller's profile), read with key visibility rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.config import get_settings
from aiteacher.db import after_commit
from aiteacher.db.models import Exam, User, new_id
from aiteacher.errors import NotFound, ValidationFailed
from aiteacher.security.tokens import Claims

GENERATE_JOB = "aiteacher.exams.jobs.generate_exam"
GENERATE_FAILED = "aiteacher.exams.jobs.generation_failed"
KEY_FIELDS = ("answer_index", "explanation", "model_answer", "rubric")


def request_exam(session: Session, caller: Claims, *, num_mcq: int, num_theory: int, course: str | None,
                 topic: str | None, difficulty: str | None, semester_id: int | None,
                 faculty_id: int | None) -> Exam:
    from aiteacher.curriculum.search import caller_scope
    from aiteacher.queue import enqueue

    settings = get_settings()
    if num_mcq + num_theory < 1:
        raise ValidationFailed("Ask for at least one question (num_mcq + num_theory >= 1)")
    if num_mcq > settings.exam_max_mcq or num_theory > settings.exam_max_theory:
        raise ValidationFailed(f"At most {settings.exam_max_mcq} MCQs and {settings.exam_max_theory} theory items")
    scope = caller_scope(session, caller, course=course, semester_id=semester_id, faculty_id=faculty_id)
    exam = Exam(id=new_id(), created_by=caller.sub, creator_role=caller.role, faculty_id=scope.faculty_id,
                semester_id=scope.semester_id, course=scope.course, topic=(topic or "").strip() or None,
                difficulty=difficulty, num_mcq=num_mcq, num_theory=num_theory, status="queued", questions=[])
    session.add(exam)
    session.flush()
    exam_id = exam.id
    after_commit(session, lambda: enqueue("exams", GENERATE_JOB, exam_id, job_id=f"exam-{exam_id}",
                                          timeout=settings.exam_job_timeout_seconds, on_failure=GENERATE_FAILED))
    audit("exam.request", "queued", actor=caller.sub, target=exam_id, num_mcq=num_mcq, num_theory=num_theory)
    return exam


def exam_view(session: Session, caller: Claims, exam_id: str) -> dict[str, Any]:
    """Creators, academics of the exam's faculty and admins see keys; students of the exam's tenant see
    the questions without keys; anyone else gets 404 (existence is not revealed)."""
    exam = session.get(Exam, exam_id)
    if exam is None:
        raise NotFound("No such exam")
    with_keys = caller.sub == exam.created_by or caller.role == "admin"
    if not with_keys:
        user = session.get(User, caller.sub)
        if user is None:
            raise NotFound("No such exam")
        same_faculty = exam.faculty_id is not None and user.faculty_id == exam.faculty_id
        if caller.role == "academic" and same_faculty:
            with_keys = True
        elif not (caller.role == "student" and same_faculty and user.semester_id == exam.semester_id):
            raise NotFound("No such exam")
    questions = exam.questions if with_keys else [
        {k: v for k, v in question.items() if k not in KEY_FIELDS} for question in exam.questions]
    return {"id": exam.id, "status": exam.status, "course": exam.course, "topic": exam.topic,
            "difficulty": exam.difficulty, "num_mcq": exam.num_mcq, "num_theory": exam.num_theory,
            "error": exam.error, "keys_included": with_keys, "questions": questions,
            "progress": _progress_view(exam), "created_at": exam.created_at.isoformat()}


def _progress_view(exam: Exam) -> dict[str, Any]:
    """`{stage, done, total}`: questions kept so far of those asked for."""
    asked = exam.num_mcq + exam.num_theory
    if exam.status == "generating":
        from aiteacher import progress

        return progress.read("exam", [exam.id]).get(exam.id) or {"stage": "generating", "done": 0, "total": asked}
    done = len(exam.questions or []) if exam.status == "ready" else 0
    return {"stage": "done" if exam.status == "ready" else exam.status, "done": done, "total": asked}
