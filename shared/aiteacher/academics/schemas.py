"""The academics domain's request and reply models: the hierarchy (GET /faculties) and a faculty's
enrolment policy (the `users` function's /users/enrolment routes). Pydantic only: cheap in a handler."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aiteacher.replies import Reply

EnrolmentPolicyName = Literal["open", "key", "managed"]


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
    policy: EnrolmentPolicyName


class Enrolment(BaseModel):
    faculty_id: int
    policy: EnrolmentPolicyName
    key_set: bool
    key_rotated_at: str | None
    enrolment_key: str | None = Field(None, description="Only in the reply that created it: store it now")
