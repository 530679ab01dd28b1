"""Exams: request (tenant from the caller's profile), read with key visibility rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.config import get_settings
from aiteacher.db import after_commit
from aiteacher.db.models import Exam, User, new_id
from aiteacher.enums import DocumentStatus, ExamStatus, Role
from aiteacher.errors import Conflict, Forbidden, NotFound, ValidationFailed
from aiteacher.security.tokens import Claims

if TYPE_CHECKING:
    from aiteacher.access import SearchScope as Scope

KEY_FIELDS = ("answer_index", "explanation", "model_answer", "rubric")


def request_exam(
    session: Session,
    caller: Claims,
    *,
    num_mcq: int,
    num_theory: int,
    course: str | None,
    topic: str | None,
    difficulty: str | None,
    semester_id: int | None,
    faculty_id: int | None,
    blueprint: dict[str, Any] | None = None,
) -> Exam:
    from aiteacher.curriculum.search import caller_scope
    from aiteacher.exams.jobs import generate_exam

    settings = get_settings()
    if num_mcq + num_theory < 1:
        raise ValidationFailed("Ask for at least one question (num_mcq + num_theory >= 1)")
    if num_mcq > settings.exam_max_mcq or num_theory > settings.exam_max_theory:
        raise ValidationFailed(f"At most {settings.exam_max_mcq} MCQs and {settings.exam_max_theory} theory items")
    scope = caller_scope(session, caller, course=course, semester_id=semester_id, faculty_id=faculty_id)
    _check_tenant_exists(session, scope.faculty_id, scope.semester_id)
    if blueprint and blueprint.get("sources"):
        _check_sources(session, scope, blueprint["sources"])
    exam = Exam(
        id=new_id(),
        created_by=caller.sub,
        creator_role=caller.role,
        faculty_id=scope.faculty_id,
        semester_id=scope.semester_id,
        course=scope.course,
        topic=(topic or "").strip() or None,
        difficulty=difficulty,
        num_mcq=num_mcq,
        num_theory=num_theory,
        status=ExamStatus.QUEUED,
        questions=[],
        blueprint=blueprint or None,
    )
    session.add(exam)
    session.flush()
    exam_id = exam.id
    after_commit(session, lambda: generate_exam.enqueue(exam_id))
    audit("exam.request", "queued", actor=caller.sub, target=exam_id, num_mcq=num_mcq, num_theory=num_theory)
    return exam


def _check_tenant_exists(session: Session, faculty_id: int | None, semester_id: int | None) -> None:
    """Admins name the tenant themselves: an unknown faculty, or a semester of another faculty, is a 422."""
    from aiteacher.db.models import Faculty, Semester

    if faculty_id is not None and session.get(Faculty, faculty_id) is None:
        raise ValidationFailed(f"No faculty {faculty_id}")
    if semester_id is not None:
        semester = session.get(Semester, semester_id)
        if semester is None or (faculty_id is not None and semester.faculty_id != faculty_id):
            raise ValidationFailed(f"No semester {semester_id} in faculty {faculty_id}")


def _check_sources(session: Session, scope: Scope, sources: list[dict[str, Any]]) -> None:
    """Every document of the blueprint must be a ready document the caller's scope covers, and its page
    ranges must lie inside it. A document of another tenant reads exactly like a missing one."""
    from aiteacher.db.models import Document

    for entry in sources:
        document = session.get(Document, entry["document_id"])
        covered = (
            document is not None
            and document.status == DocumentStatus.READY
            and (scope.faculty_id is None or document.faculty_id == scope.faculty_id)
            and (scope.semester_id is None or document.semester_id == scope.semester_id)
            and (scope.course is None or document.course == scope.course)
        )
        if document is None or not covered:
            raise ValidationFailed(
                f"Blueprint document {entry['document_id']} is not a ready document of your course material"
            )
        for key in ("first_page", "last_page"):
            if entry.get(key) and entry[key] > document.pages:
                raise ValidationFailed(
                    f"Blueprint page {entry[key]} is past the end of document "
                    f"{entry['document_id']} ({document.pages} pages)"
                )


def visible_exam(session: Session, caller: Claims, exam_id: str) -> Exam:
    """The exam if the caller may see it at all: its creator, admins, academics of its faculty and students
    of its faculty and semester. Anyone else gets 404 (existence is not revealed)."""
    exam = session.get(Exam, exam_id)
    if exam is None:
        raise NotFound("No such exam")
    from aiteacher import access

    try:
        scope = access.caller_scope(caller, session)
    except NotFound:
        raise NotFound("No such exam") from None
    seen = access.exam_access(
        scope, created_by=exam.created_by, faculty_id=exam.faculty_id, semester_id=exam.semester_id
    )
    if seen is access.ExamAccess.NONE:
        raise NotFound("No such exam")
    return exam


def is_staff(caller: Claims, exam: Exam) -> bool:
    """Admins and the academics who manage the exam's faculty (the access policy): they always see keys."""
    from aiteacher import access

    return caller.role != Role.STUDENT and access.may_manage_faculty(access.caller_scope(caller), exam.faculty_id)


def is_practice(exam: Exam) -> bool:
    return exam.creator_role == Role.STUDENT


def keys_visible(session: Session, caller: Claims, exam: Exam) -> bool:
    """Staff always; the creator of a practice exam once they revealed the keys; any student once their own
    attempt at this exam is submitted."""
    from aiteacher.exams import repository

    if is_staff(caller, exam):
        return True
    if caller.sub == exam.created_by and exam.keys_revealed:
        return True
    return repository.has_submitted_attempt(session, exam.id, caller.sub)


def strip_keys(question: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in question.items() if k not in KEY_FIELDS}


def exam_summary(exam: Exam) -> dict[str, Any]:
    return {
        "id": exam.id,
        "status": exam.status,
        "kind": "practice" if is_practice(exam) else "course",
        "course": exam.course,
        "topic": exam.topic,
        "difficulty": exam.difficulty,
        "num_mcq": exam.num_mcq,
        "num_theory": exam.num_theory,
        "num_questions": len(exam.questions or []),
        "created_at": exam.created_at.isoformat(),
    }


def exam_view(session: Session, caller: Claims, exam_id: str) -> dict[str, Any]:
    exam = visible_exam(session, caller, exam_id)
    with_keys = keys_visible(session, caller, exam)
    questions = [with_source_link(q) for q in exam.questions]
    if not with_keys:
        questions = [strip_keys(q) for q in questions]
    return {
        **exam_summary(exam),
        "error": exam.error,
        "keys_included": with_keys,
        "questions": questions,
        "blueprint": exam.blueprint,
        "mine": caller.sub == exam.created_by,
        "progress": _progress_view(exam),
    }


def with_source_link(question: dict[str, Any]) -> dict[str, Any]:
    """The question with `source.page_url`: the page of the document it was written from."""
    source = question.get("source") or {}
    if source.get("document_id") and source.get("page"):
        source = {**source, "page_url": page_url(source["document_id"], source["page"])}
    return {**question, "source": source}


def page_url(document_id: str, page: int) -> str:
    return f"/documents/{document_id}/pages/{int(page)}"


def reveal_keys(session: Session, caller: Claims, exam_id: str) -> dict[str, Any]:
    """The creator of a practice exam asks to see its keys before (or without) submitting an attempt."""
    exam = visible_exam(session, caller, exam_id)
    if not is_staff(caller, exam):
        if caller.sub != exam.created_by:
            audit("exam.reveal", "denied", actor=caller.sub, target=exam.id)
            raise Forbidden("Only the creator of a practice exam can reveal its keys")
        if exam.status != ExamStatus.READY:
            raise Conflict("The exam is not ready yet", code="exam_not_ready")
        if not exam.keys_revealed:
            exam.keys_revealed = True
            audit("exam.reveal", "ok", actor=caller.sub, target=exam.id)
    session.flush()
    return exam_view(session, caller, exam_id)


def list_exams(session: Session, caller: Claims, *, limit: int, offset: int) -> dict[str, Any]:
    """The caller's exams, newest first: those they created, plus the course exams of their tenant
    (students: faculty and semester; academics: faculty; admins: every exam)."""
    from aiteacher.exams import repository

    user = session.get(User, caller.sub) if caller.role != Role.ADMIN else None
    rows = repository.exams_page(
        session,
        user_id=caller.sub,
        role=caller.role,
        faculty_id=user.faculty_id if user else None,
        semester_id=user.semester_id if user else None,
        limit=limit,
        offset=offset,
    )
    page, more = rows[:limit], len(rows) > limit
    attempts = repository.latest_attempts(session, caller.sub, [e.id for e in page])
    items = []
    for exam in page:
        latest = attempts.get(exam.id)
        items.append(
            {
                **exam_summary(exam),
                "mine": exam.created_by == caller.sub,
                "my_latest_attempt": None
                if latest is None
                else {"id": latest.id, "status": latest.status, "score": latest.score, "max_score": latest.max_score},
            }
        )
    return {"exams": items, "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


def _progress_view(exam: Exam) -> dict[str, Any]:
    """`{stage, done, total}`: questions kept so far of those asked for."""
    asked = exam.num_mcq + exam.num_theory
    if exam.status == ExamStatus.GENERATING:
        from aiteacher import progress

        return progress.read("exam", [exam.id]).get(exam.id) or {"stage": "generating", "done": 0, "total": asked}
    done = len(exam.questions or []) if exam.status == ExamStatus.READY else 0
    return {"stage": "done" if exam.status == ExamStatus.READY else exam.status, "done": done, "total": asked}
