"""The academic hierarchy (faculties, departments, semesters), placement checks and enrolment policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from aiteacher.academics import repository
from aiteacher.academics.schemas import DepartmentOut, Enrolment, FacultyOut, SemesterOut
from aiteacher.audit import audit
from aiteacher.db.models import Department, Faculty, Semester
from aiteacher.enums import EnrolmentPolicy
from aiteacher.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiteacher.access import CallerScope

DEMO_HIERARCHY: list[tuple[str, str, list[str]]] = [
    ("eng", "Faculty of Engineering", ["Computer Engineering", "Electrical Engineering", "Mechanical Engineering"]),
    ("sci", "Faculty of Science", ["Mathematics", "Physics", "Psychology"]),
    ("hum", "Faculty of Humanities and Social Sciences", ["Philosophy", "Political Science", "History"]),
]
SEMESTERS_PER_FACULTY = 8


def seed_demo(session: Session) -> bool:
    """Give an empty database the demo hierarchy; a database with any faculty is left alone."""
    if repository.has_faculties(session):
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


def list_faculties(session: Session) -> list[FacultyOut]:
    faculties, departments, semesters = repository.hierarchy(session)
    by_faculty = {
        f.id: FacultyOut(
            id=f.id, code=f.code, name=f.name, enrolment_policy=f.enrolment_policy, departments=[], semesters=[]
        )
        for f in faculties
    }
    for d in departments:
        by_faculty[d.faculty_id].departments.append(DepartmentOut(id=d.id, name=d.name))
    for s in semesters:
        by_faculty[s.faculty_id].semesters.append(SemesterOut(id=s.id, number=s.number, name=s.name))
    return list(by_faculty.values())


def check_placement(
    session: Session, faculty_id: int | None, department_id: int | None, semester_id: int | None
) -> None:
    """A department or semester must exist and belong to the given faculty (422 otherwise)."""
    if faculty_id is not None and session.get(Faculty, faculty_id) is None:
        raise ValidationFailed(f"Faculty {faculty_id} does not exist", code="unknown_faculty")
    loaders: tuple[tuple[Callable[[int], Department | Semester | None], int | None, str], ...] = (
        (lambda key: session.get(Department, key), department_id, "department"),
        (lambda key: session.get(Semester, key), semester_id, "semester"),
    )
    for load, value, label in loaders:
        if value is None:
            continue
        row = load(value)
        if row is None:
            raise ValidationFailed(f"The {label} {value} does not exist", code=f"unknown_{label}")
        if faculty_id is None or row.faculty_id != faculty_id:
            raise ValidationFailed(
                f"The {label} {value} does not belong to faculty {faculty_id}", code=f"{label}_faculty_mismatch"
            )


# --- enrolment policy -----------------------------------------------------------------------------


def enrolment_view(faculty: Faculty, new_key: str | None = None) -> Enrolment:
    rotated = faculty.enrolment_key_rotated_at
    return Enrolment(
        faculty_id=faculty.id,
        policy=EnrolmentPolicy(faculty.enrolment_policy),
        key_set=faculty.enrolment_key_hash is not None,
        key_rotated_at=rotated.isoformat() if rotated else None,
        enrolment_key=new_key,
    )


def _managed_faculty(session: Session, actor: CallerScope, faculty_id: int, *, lock: bool = False) -> Faculty:
    from aiteacher.access import check_manage_enrolment

    faculty = repository.faculty(session, faculty_id, lock=lock)
    if faculty is None:
        raise NotFound("No such faculty")
    check_manage_enrolment(actor, faculty.id)
    return faculty


def get_enrolment(session: Session, actor: CallerScope, faculty_id: int) -> Enrolment:
    return enrolment_view(_managed_faculty(session, actor, faculty_id))


def set_enrolment_policy(session: Session, actor: CallerScope, faculty_id: int, policy: str) -> Enrolment:
    """Switch a faculty's policy; switching to `key` without a key creates one (returned once)."""
    from aiteacher.access import EnrolmentPolicy

    faculty = _managed_faculty(session, actor, faculty_id, lock=True)
    before = faculty.enrolment_policy
    faculty.enrolment_policy = EnrolmentPolicy(policy).value
    new_key = None
    if faculty.enrolment_policy == EnrolmentPolicy.KEY and faculty.enrolment_key_hash is None:
        new_key = _store_new_key(faculty)
    session.flush()
    audit(
        "faculty.enrolment_policy",
        "ok",
        actor=actor.user_id,
        target=str(faculty.id),
        before=before,
        policy=faculty.enrolment_policy,
        key_rotated=new_key is not None,
    )
    return enrolment_view(faculty, new_key)


def rotate_enrolment_key(session: Session, actor: CallerScope, faculty_id: int) -> Enrolment:
    """A new key (returned once, stored as a hash): the previous key stops working at once."""
    faculty = _managed_faculty(session, actor, faculty_id, lock=True)
    new_key = _store_new_key(faculty)
    session.flush()
    audit("faculty.enrolment_key", "rotated", actor=actor.user_id, target=str(faculty.id))
    return enrolment_view(faculty, new_key)


def _store_new_key(faculty: Faculty) -> str:
    from aiteacher.access import hash_enrolment_key, new_enrolment_key
    from aiteacher.db.models import utcnow

    key = new_enrolment_key()
    faculty.enrolment_key_hash = hash_enrolment_key(key)
    faculty.enrolment_key_rotated_at = utcnow()
    return key
