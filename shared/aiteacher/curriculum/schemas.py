"""The curriculum domain's request and reply models: documents, uploads, bucket events, pages and
search. Pydantic only: cheap to import in a handler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aiteacher.bounds import MAX_ID
from aiteacher.replies import Reply


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


class AcceptedObject(Reply):
    bucket: str
    key: str
    document_id: str
    duplicate: bool = Field(description="This object version had its document already")


class IgnoredRecord(Reply):
    key: str
    reason: str


class EventsAccepted(Reply):
    accepted: list[AcceptedObject]
    ignored: list[IgnoredRecord]


class PageOut(Reply):
    document_id: str
    title: str
    page: int
    pages: int | None
    text: str
    image_url: str


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=1000)
    top_k: int = Field(5, ge=1, le=50)
    course: str | None = Field(None, max_length=100)
    semester_id: int | None = Field(None, ge=1, le=MAX_ID, description="Academics and admins: narrow to a semester")
    faculty_id: int | None = Field(None, ge=1, le=MAX_ID, description="Admins: narrow to a faculty")


class SearchResult(BaseModel):
    document_id: str
    title: str
    course: str
    page: int = Field(description="The unit number: a PDF page, a slide or a section (see `unit`)")
    text: str
    score: float
    unit: str = Field("page", description="page | slide | section")
    ocr: bool = Field(False, description="The text was recognised from a scanned page")
    page_url: str = Field(description="GET it (same token) for the page's text; add /image for a PNG")


class SearchOut(BaseModel):
    results: list[SearchResult]
