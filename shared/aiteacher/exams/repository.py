"""The exams domain's SQL: the exam listing and the attempts of an exam or of a student.

Statements only; visibility is the access policy's (`aiteacher.access.exam_access`) and the service's.
Loading an exam or attempt by id (`session.get`) and changing a loaded row stay in the services.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from aiteacher.db.models import Document, Exam, ExamAttempt
from aiteacher.enums import AttemptStatus, DocumentStatus, Role


def exams_page(
    session: Session,
    *,
    user_id: str,
    role: str,
    faculty_id: int | None,
    semester_id: int | None,
    limit: int,
    offset: int,
) -> list[Exam]:
    """Up to `limit + 1` exams, newest first (one more than the page: is there a next one?): for admins every
    exam; otherwise those the user created plus the course exams of their tenant (students: faculty and
    semester; academics: faculty). A user without a faculty sees only their own."""
    statement = select(Exam)
    if role != Role.ADMIN:
        mine = Exam.created_by == user_id
        course_exam = Exam.creator_role.in_((Role.ACADEMIC, Role.ADMIN))
        if faculty_id is None:
            statement = statement.where(mine)
        elif role == Role.ACADEMIC:
            statement = statement.where(or_(mine, and_(Exam.faculty_id == faculty_id, course_exam)))
        else:
            statement = statement.where(
                or_(mine, and_(Exam.faculty_id == faculty_id, Exam.semester_id == semester_id, course_exam))
            )
    statement = statement.order_by(Exam.created_at.desc(), Exam.id.desc()).offset(offset).limit(limit + 1)
    return list(session.scalars(statement))


def latest_attempts(session: Session, user_id: str, exam_ids: list[str]) -> dict[str, ExamAttempt]:
    """The user's latest attempt at each of the exams (exams without one are absent)."""
    latest: dict[str, ExamAttempt] = {}
    if not exam_ids:
        return latest
    statement = (
        select(ExamAttempt)
        .where(ExamAttempt.user_id == user_id, ExamAttempt.exam_id.in_(exam_ids))
        .order_by(ExamAttempt.created_at.asc())
    )
    for attempt in session.scalars(statement):
        latest[attempt.exam_id] = attempt  # the latest wins
    return latest


def user_attempts(session: Session, exam_id: str, user_id: str, *, newest_first: bool = False) -> list[ExamAttempt]:
    statement = select(ExamAttempt).where(ExamAttempt.exam_id == exam_id, ExamAttempt.user_id == user_id)
    if newest_first:
        statement = statement.order_by(ExamAttempt.created_at.desc())
    return list(session.scalars(statement))


def has_submitted_attempt(session: Session, exam_id: str, user_id: str) -> bool:
    statement = select(ExamAttempt.id).where(
        ExamAttempt.exam_id == exam_id, ExamAttempt.user_id == user_id, ExamAttempt.status != AttemptStatus.IN_PROGRESS
    )
    return session.scalar(statement.limit(1)) is not None


def graded_attempts(session: Session, exam_id: str) -> list[ExamAttempt]:
    statement = select(ExamAttempt).where(ExamAttempt.exam_id == exam_id, ExamAttempt.status == AttemptStatus.GRADED)
    return list(session.scalars(statement))


def source_documents(session: Session, exam: Exam, document_ids: list[str]) -> list[str]:
    """Up to 20 ready documents an exam may draw on, newest first: the exam's faculty, semester (if set) and
    course (if set), restricted to `document_ids` when the blueprint names sources."""
    statement = select(Document.id).where(
        Document.status == DocumentStatus.READY, Document.faculty_id == exam.faculty_id
    )
    if exam.semester_id is not None:
        statement = statement.where(Document.semester_id == exam.semester_id)
    if exam.course:
        statement = statement.where(Document.course == exam.course)
    if document_ids:
        statement = statement.where(Document.id.in_(document_ids))
    return [str(row) for row in session.scalars(statement.order_by(Document.created_at.desc()).limit(20))]
