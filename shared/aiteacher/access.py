"""The access policy: who may read or write what, in which tenant.

Every function and domain asks here; nothing else compares roles or faculties. The caller's role and
placement come from the stored profile (cached in Redis, see `identity.profiles`, reached through the
`aiteacher.accounts` port), never from the request body, and a token older than the account's last role
change or deactivation never gets this far (`identity.profiles.admit_token`).

Tenants are faculties (and, for students, semesters). The rules in one place:

- students read the course material, exams and tutor of their own faculty and semester; they place
  themselves only as their target faculty's enrolment policy allows (`open`, `key`, `managed`);
- academics manage the documents, exams, enrolment policy and student placements of their own faculty;
  an admin places them (they never move themselves);
- admins do anything anywhere.

"Profile incomplete" (a caller without the placement an action needs) is always 409 `profile_incomplete`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from aiteacher.enums import EnrolmentPolicy, Role  # re-exported: `access.Role` is the policy's vocabulary
from aiteacher.errors import Conflict, Forbidden

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from aiteacher.security.tokens import Claims


class ProfileIncomplete(Conflict):
    """The caller lacks the placement the action needs: one status (409) everywhere."""

    code, title = "profile_incomplete", "Profile incomplete"


@dataclass(frozen=True)
class CallerScope:
    """Who is asking: the stored role and placement of the signed-in account."""

    user_id: str
    role: Role
    faculty_id: int | None
    department_id: int | None
    semester_id: int | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_academic(self) -> bool:
        return self.role is Role.ACADEMIC

    @property
    def is_student(self) -> bool:
        return self.role is Role.STUDENT


def scope_of(profile: dict[str, Any]) -> CallerScope:
    return CallerScope(
        str(profile["id"]),
        Role(profile["role"]),
        profile.get("faculty_id"),
        profile.get("department_id"),
        profile.get("semester_id"),
    )


def caller_scope(caller: Claims, session: Session | None = None) -> CallerScope:
    """The caller's scope from the stored profile (the copy `admit` prefetched, else the database)."""
    from aiteacher.accounts import provider

    return scope_of(provider().current(caller.sub, session))


# --- course material: search, chat and exam generation --------------------------------------------


@dataclass(frozen=True)
class SearchScope:
    """What a caller may retrieve: exact-match filters on the vector payload."""

    faculty_id: int | None
    semester_id: int | None
    course: str | None

    def filters(self) -> dict[str, Any]:
        return {"faculty_id": self.faculty_id, "semester_id": self.semester_id, "course": self.course}


def search_scope(
    scope: CallerScope, *, course: str | None = None, semester_id: int | None = None, faculty_id: int | None = None
) -> SearchScope:
    """Students: their faculty and semester; academics: their faculty (any semester); admins: anything.
    A request naming another tenant is refused (403), never silently widened."""
    course = course.strip() if course and course.strip() else None
    if scope.is_student:
        if scope.faculty_id is None or scope.semester_id is None:
            raise ProfileIncomplete("Set your faculty and semester in your profile (PUT /me) to use course material")
        if faculty_id not in (None, scope.faculty_id) or semester_id not in (None, scope.semester_id):
            raise Forbidden("Students search only their own faculty and semester")
        return SearchScope(scope.faculty_id, scope.semester_id, course)
    if scope.is_academic:
        own = _academic_faculty(scope)
        if faculty_id not in (None, own):
            raise Forbidden("Academics search only their own faculty")
        return SearchScope(own, semester_id, course)
    return SearchScope(faculty_id, semester_id, course)


# --- documents ------------------------------------------------------------------------------------


def _academic_faculty(scope: CallerScope) -> int:
    if scope.faculty_id is None:
        raise ProfileIncomplete("An admin has not placed you in a faculty yet (PUT /users/{id}/placement)")
    return scope.faculty_id


def managed_faculty(scope: CallerScope) -> int | None:
    """The faculty whose documents the caller manages; None means every faculty (admins)."""
    if scope.is_admin:
        return None
    if not scope.is_academic:
        raise Forbidden("Only academics and admins manage documents")
    return _academic_faculty(scope)


def may_manage_faculty(scope: CallerScope, faculty_id: int | None) -> bool:
    """Documents, exams, enrolment and student placements of a faculty: its academics and admins."""
    if scope.is_admin:
        return True
    return scope.is_academic and faculty_id is not None and scope.faculty_id == faculty_id


def may_read_document(scope: CallerScope, document_faculty_id: int | None) -> bool:
    return may_manage_faculty(scope, document_faculty_id)


def may_open_pages(scope: CallerScope, *, faculty_id: int | None, semester_id: int | None) -> bool:
    """A document's pages (text and image, what citations link to): the faculty's academics and admins,
    and the students of its faculty and semester (the tenant whose search shows it)."""
    if may_manage_faculty(scope, faculty_id):
        return True
    return (
        scope.is_student
        and faculty_id is not None
        and scope.semester_id is not None
        and (scope.faculty_id, scope.semester_id) == (faculty_id, semester_id)
    )


def upload_placement(
    scope: CallerScope, faculty_id: int | None, semester_id: int | None
) -> tuple[int | None, int | None]:
    """Where an upload goes: academics into their own faculty (default: their semester), admins anywhere."""
    if scope.is_admin:
        return faculty_id, semester_id
    own = managed_faculty(scope)
    if faculty_id is not None and faculty_id != own:
        raise Forbidden("Academics can upload only to their own faculty")
    return own, semester_id or scope.semester_id


# --- exams ----------------------------------------------------------------------------------------


class ExamAccess(Enum):
    NONE = "none"  # indistinguishable from a missing exam
    QUESTIONS = "questions"
    KEYS = "keys"


def exam_access(
    scope: CallerScope, *, created_by: str | None, faculty_id: int | None, semester_id: int | None
) -> ExamAccess:
    """Creators, the faculty's academics and admins see keys; students of the exam's tenant see the
    questions; anyone else sees nothing."""
    if may_see_exam_keys(scope, created_by=created_by, faculty_id=faculty_id):
        return ExamAccess.KEYS
    if (
        scope.is_student
        and faculty_id is not None
        and (scope.faculty_id, scope.semester_id) == (faculty_id, semester_id)
    ):
        return ExamAccess.QUESTIONS
    return ExamAccess.NONE


def may_see_exam_keys(scope: CallerScope, *, created_by: str | None, faculty_id: int | None) -> bool:
    return scope.user_id == created_by or may_manage_faculty(scope, faculty_id)


# --- placement and enrolment ----------------------------------------------------------------------


def check_self_placement(
    scope: CallerScope,
    *,
    new_faculty_id: int | None,
    placement_changed: bool,
    policy: EnrolmentPolicy | None,
    key_hash: str | None,
    enrolment_key: str | None,
) -> None:
    """A change of one's own faculty, department or semester through PUT /me.

    Academics and admins never move themselves. A student entering a faculty follows its policy:
    `open` lets them in, `key` needs the current enrolment key, `managed` refuses (its staff place
    students). Within a `managed` faculty a student changes nothing; leaving a faculty is always allowed."""
    if not placement_changed:
        return
    if not scope.is_student:
        raise Forbidden("Academics and admins are placed by an admin (PUT /users/{id}/placement)")
    if new_faculty_id is None or policy in (None, EnrolmentPolicy.OPEN):
        return
    if policy is EnrolmentPolicy.MANAGED:
        raise Forbidden("This faculty places its students itself: ask one of its academics", code="enrolment_managed")
    if new_faculty_id == scope.faculty_id:
        return  # already admitted with the key: moving between its semesters needs no key
    if not enrolment_key:
        raise Forbidden("This faculty needs its enrolment key: send enrolment_key", code="enrolment_key_required")
    if key_hash is None or not hmac.compare_digest(hash_enrolment_key(enrolment_key), key_hash):
        raise Forbidden("The enrolment key is not valid for this faculty", code="enrolment_key_invalid")


def check_placement_by(
    actor: CallerScope, *, target_role: Role, current_faculty_id: int | None, new_faculty_id: int | None
) -> None:
    """Placing someone else: admins place anyone; academics place students into, or out of, their own
    faculty; nobody else places anyone."""
    if actor.is_admin:
        return
    if not actor.is_academic:
        raise Forbidden("Only academics and admins place users")
    own = _academic_faculty(actor)
    if target_role is not Role.STUDENT:
        raise Forbidden("Only an admin places academics and admins")
    if new_faculty_id not in (None, own) or (new_faculty_id is None and current_faculty_id != own):
        raise Forbidden("Academics place students of their own faculty only")


def check_manage_enrolment(actor: CallerScope, faculty_id: int) -> None:
    if not may_manage_faculty(actor, faculty_id):
        raise Forbidden("Only the faculty's academics and admins manage its enrolment")


def require_admin(actor: CallerScope) -> None:
    if not actor.is_admin:
        raise Forbidden("This action needs the admin role")


def user_directory_scope(actor: CallerScope) -> tuple[int | None, Role | None]:
    """Whose accounts the caller may list: (faculty filter, role filter). Admins: everyone;
    academics: the students of their own faculty."""
    if actor.is_admin:
        return None, None
    if actor.is_academic:
        return _academic_faculty(actor), Role.STUDENT
    raise Forbidden("Only academics and admins list users")


def new_enrolment_key() -> str:
    """96 random bits, readable: xxxx-xxxx-xxxx-xxxx."""
    raw = secrets.token_hex(8)
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def hash_enrolment_key(key: str) -> str:
    """Keys are random (96 bits), so a plain SHA-256 is enough; normalising case and blanks forgives typing."""
    normalized = "".join(key.split()).lower()
    return hashlib.sha256(f"aiteacher-enrolment:{normalized}".encode()).hexdigest()
