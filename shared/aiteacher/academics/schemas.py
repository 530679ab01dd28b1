"""The academics domain's request and reply models: the hierarchy (GET /faculties) and a faculty's
enrolment policy (the `users` function's /users/enrolment routes). Pydantic only: cheap in a handler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aiteacher.enums import EnrolmentPolicy
from aiteacher.replies import Reply


class DepartmentOut(Reply):
    id: int
    name: str


class SemesterOut(Reply):
    id: int
    number: int
    name: str


class FacultyOut(Reply):
    id: int
    code: str
    name: str
    departments: list[DepartmentOut]
    semesters: list[SemesterOut]


class EnrolmentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: EnrolmentPolicy


class Enrolment(BaseModel):
    faculty_id: int
    policy: EnrolmentPolicy
    key_set: bool
    key_rotated_at: str | None
    enrolment_key: str | None = Field(None, description="Only in the reply that created it: store it now")
