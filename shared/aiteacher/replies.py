"""Response models of the functions whose handlers return plain dicts, so every route documents its
body and schemathesis can check it. They name the contract's fields (DESIGN.md section 3) and allow
more (`extra="allow"`): a field a domain adds is passed through, never silently dropped."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


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


class DocumentOut(Reply):
    id: str
    title: str
    course: str
    faculty_id: int | None
    semester_id: int | None
    status: str
    pages: int | None = None
    chunks: int | None = None
    error: str | None = None


class DocumentList(Reply):
    documents: list[DocumentOut]


class IngestAccepted(Reply):
    document_id: str
    status: str


class ExamAccepted(Reply):
    exam_id: str
    status: str


class ExamOut(Reply):
    id: str
    status: str
    questions: list[dict[str, Any]]


class ChatSessionOut(Reply):
    id: str
    messages: list[dict[str, Any]]


class EventsAccepted(Reply):
    accepted: list[dict[str, Any]]
    ignored: list[dict[str, Any]]
