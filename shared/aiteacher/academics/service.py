from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aiteacher.db.models import Department, Faculty, Semester
from aiteacher.errors import ValidationFailed

DEMO_HIERARCHY: list[tuple[str, str, list[str]]] = [
    ("eng", "Faculty of Engineering", ["Computer Engineering", "Electrical Engineering", "Mechanical Engineering"]),
    ("sci", "Faculty of Science", ["Mathematics", "Physics", "Psychology"]),
    ("hum", "Faculty of Humanities and Social Sciences", ["Philosophy", "Political Science", "History"]),
]
SEMESTERS_PER_FACULTY = 8


def seed_demo(session: Session) -> bool:
    """Give an empty database the demo hierarchy; a database with any faculty is left alone."""
    if session.scalar(select(Faculty.id).limit(1)) is not None:
        return False
    for code, name, departments in DEMO_HIERARCHY:
        faculty = Faculty(code=code, name=name)
        session.add(faculty)
        session.flush()
        session.add_all(Department(faculty_id=faculty.id, name=dept) for dept in departments)
        session.add_all(
            Semester(faculty_id=faculty.id, number=n, name=f"Semester {n}") for n in range(1, SEMESTERS_PER_FACULTY + 1)
        )
    session.flush()
    return True


def list_faculties(session: Session) -> list[dict[str, Any]]:
    faculties = session.scalars(select(Faculty).order_by(Faculty.id)).all()
    departments = session.scalars(select(Department).order_by(Department.id)).all()
    semesters = session.scalars(select(Semester).order_by(Semester.faculty_id, Semester.number)).all()
    by_faculty: dict[int, dict[str, Any]] = {
        f.id: {"id": f.id, "code": f.code, "name": f.name, "departments": [], "semesters": []} for f in faculties
    }
    for d in departments:
        by_faculty[d.faculty_id]["departments"].append({"id": d.id, "name": d.name})
    for s in semesters:
        by_faculty[s.faculty_id]["semesters"].append({"id": s.id, "number": s.number, "name": s.name})
    return list(by_faculty.values())


def check_placement(session: Session, faculty_id: int | None, department_id: int | None,
                    semester_id: int | None) -> None:
    """A department or semester must exist and belong to the given faculty (422 otherwise)."""
    if faculty_id is not None and session.get(Faculty, faculty_id) is None:
        raise ValidationFailed(f"Faculty {faculty_id} does not exist", code="unknown_faculty")
    for model, value, label in ((Department, department_id, "department"), (Semester, semester_id, "semester")):
        if value is None:
            continue
        row = session.get(model, value)
        if row is None:
            raise ValidationFailed(f"The {label} {value} does not exist", code=f"unknown_{label}")
        if faculty_id is None or row.faculty_id != faculty_id:
            raise ValidationFailed(f"The {label} {value} does not belong to faculty {faculty_id}",
                                   code=f"{label}_faculty_mismatch")
