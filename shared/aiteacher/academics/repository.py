"""The academics domain's SQL: the hierarchy of faculties, departments and semesters, and faculty rows
locked for an enrolment change."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from aiteacher.db.models import Department, Faculty, Semester


def has_faculties(session: Session) -> bool:
    return session.scalar(select(Faculty.id).limit(1)) is not None


def hierarchy(session: Session) -> tuple[Sequence[Faculty], Sequence[Department], Sequence[Semester]]:
    """Every faculty, department and semester, in display order (three queries)."""
    faculties = session.scalars(select(Faculty).order_by(Faculty.id)).all()
    departments = session.scalars(select(Department).order_by(Department.id)).all()
    semesters = session.scalars(select(Semester).order_by(Semester.faculty_id, Semester.number)).all()
    return faculties, departments, semesters


def faculty(session: Session, faculty_id: int, *, lock: bool = False) -> Faculty | None:
    """The faculty (locked until the transaction ends with `lock`); ids past the column's range are None."""
    return session.get(Faculty, faculty_id, with_for_update=lock) if faculty_id < 2**31 else None
