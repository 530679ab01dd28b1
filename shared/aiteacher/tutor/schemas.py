"""The tutor domain's request and reply models: a chat turn and the caller's conversations.
Pydantic only: cheap to import in a handler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aiteacher.replies import Reply


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=20000)
    session_id: str | None = Field(None, max_length=36)
    course: str | None = Field(None, max_length=100)


class Citation(BaseModel):
    document_id: str
    title: str
    page: int = Field(description="The unit number: a PDF page, a slide or a section (see `unit`)")
    unit: str = Field("page", description="page | slide | section")
    ocr: bool = Field(False, description="The cited text was recognised from a scanned page")
    page_url: str | None = Field(None, description="GET it (same token) for the page's text; add /image for a PNG")


class ChatOut(BaseModel):
    session_id: str
    answer: str
    citations: list[Citation]
    refused: bool
    reason: str | None = Field(None, description="integrity | not_in_material | flagged when refused")
    hint_level: int | None = Field(None, description="0 hint, 1 stronger hint, 2 worked explanation")


class LastMessage(BaseModel):
    role: str
    preview: str
    created_at: str


class SessionSummary(BaseModel):
    id: str
    course: str | None
    title: str = Field(description="The session's first question, shortened")
    last_message: LastMessage | None
    message_count: int
    hint_level: int
    created_at: str
    updated_at: str


class SessionPage(BaseModel):
    sessions: list[SessionSummary] = Field(description="The caller's own sessions, newest activity first")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page")


class MessageOut(Reply):
    role: str = Field(description="user | assistant")
    content: str
    refused: bool
    created_at: str


class ChatSessionOut(Reply):
    id: str
    messages: list[MessageOut]
