"""ORM models. Alembic's history in `migrations/` is the schema's source of truth; these mirror it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from aiteacher.enums import AttemptStatus, DocumentStatus, ExamStatus, Role


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK constraint's text: `column IN ('a', 'b')`, from the enum the code uses."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Faculty(Base):
    """A tenant. `enrolment_policy` says how students join it: open (self-placement), key (self-placement
    with the enrolment key, stored as a hash) or managed (its academics and admins place students)."""

    __tablename__ = "faculties"
    __table_args__ = (
        CheckConstraint("enrolment_policy IN ('open', 'key', 'managed')", name="ck_faculties_enrolment_policy"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    enrolment_policy: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    enrolment_key_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    enrolment_key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Department(Base):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("faculty_id", "name", name="uq_departments_faculty_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    faculty_id: Mapped[int] = mapped_column(ForeignKey("faculties.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class Semester(Base):
    __tablename__ = "semesters"
    __table_args__ = (UniqueConstraint("faculty_id", "number", name="uq_semesters_faculty_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    faculty_id: Mapped[int] = mapped_column(ForeignKey("faculties.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(one_of("role", Role), name="ck_users_role"),
        Index("ix_users_faculty_role", "faculty_id", "role"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.STUDENT)
    faculty_id: Mapped[int | None] = mapped_column(ForeignKey("faculties.id", ondelete="SET NULL"), nullable=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"), nullable=True)
    semester_id: Mapped[int | None] = mapped_column(ForeignKey("semesters.id", ondelete="SET NULL"), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    push_token: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    # Raised by a role change or deactivation: access tokens carrying an older version are refused.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RefreshFamily(Base):
    """One login: every refresh token it rotates through shares the family; only `current_jti` is valid."""

    __tablename__ = "refresh_families"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    current_jti: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RevokedToken(Base):
    """A logged-out access token, kept until it expires: the Redis deny-list is rebuilt from this table (and
    from revoked refresh families) when Redis comes back empty, so a revocation never silently vanishes."""

    __tablename__ = "revoked_tokens"
    issuer: Mapped[str] = mapped_column(String(200), primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Document(Base):
    """A curriculum PDF. (bucket, object_key, etag) is unique: one object version is ingested once,
    however often its event is delivered."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("bucket", "object_key", "etag", name="uq_documents_object_version"),
        CheckConstraint(one_of("status", DocumentStatus), name="ck_documents_status"),
        Index("ix_documents_tenant", "faculty_id", "semester_id", "course"),
        # The same bytes in one tenant's course are one document, whether uploaded or dropped in the bucket.
        UniqueConstraint("faculty_id", "semester_id", "course", "content_hash", name="uq_documents_content"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(300))
    course: Mapped[str] = mapped_column(String(100))
    faculty_id: Mapped[int | None] = mapped_column(ForeignKey("faculties.id", ondelete="CASCADE"), nullable=True)
    semester_id: Mapped[int | None] = mapped_column(ForeignKey("semesters.id", ondelete="CASCADE"), nullable=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.QUEUED)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="upload")
    bucket: Mapped[str] = mapped_column(String(255))
    object_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """SHA-256 of the file, claimed by the first document of its tenant and course (NULL until known)."""
    uploaded_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """What the content turned out to be (pdf, pptx, docx, markdown, html), once the worker has read it."""
    ocr_pages: Mapped[list | None] = mapped_column(JSON, nullable=True)
    """Units whose text came from OCR."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChatSession(Base):
    """A tutoring conversation. `hint_level` is the hint ladder's rung; `learning_state` the summary."""

    __tablename__ = "chat_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    course: Mapped[str | None] = mapped_column(String(100), nullable=True)
    hint_level: Mapped[int] = mapped_column(Integer, default=0)
    focus_chunks: Mapped[list] = mapped_column(JSON, default=list)
    learning_state: Mapped[dict] = mapped_column(JSON, default=dict)
    learning_state_version: Mapped[int] = mapped_column(Integer, default=0)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session", "session_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    citations: Mapped[list] = mapped_column(JSON, default=list)
    refused: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    hint_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Exam(Base):
    __tablename__ = "exams"
    __table_args__ = (
        CheckConstraint(one_of("status", ExamStatus), name="ck_exams_status"),
        Index("ix_exams_tenant", "faculty_id", "semester_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    creator_role: Mapped[str] = mapped_column(String(16))
    faculty_id: Mapped[int | None] = mapped_column(ForeignKey("faculties.id", ondelete="CASCADE"), nullable=True)
    semester_id: Mapped[int | None] = mapped_column(ForeignKey("semesters.id", ondelete="CASCADE"), nullable=True)
    course: Mapped[str | None] = mapped_column(String(100), nullable=True)
    topic: Mapped[str | None] = mapped_column(String(200), nullable=True)
    difficulty: Mapped[str | None] = mapped_column(String(16), nullable=True)
    num_mcq: Mapped[int] = mapped_column(Integer)
    num_theory: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ExamStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    questions: Mapped[list] = mapped_column(JSON, default=list)
    keys_revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    blueprint: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ExamAttempt(Base):
    """One student's attempt at an exam: saved answers, then (after submit) per-item grades and feedback."""

    __tablename__ = "exam_attempts"
    __table_args__ = (
        CheckConstraint(one_of("status", AttemptStatus), name="ck_exam_attempts_status"),
        Index("ix_exam_attempts_exam_user", "exam_id", "user_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    exam_id: Mapped[str] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=AttemptStatus.IN_PROGRESS)
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    results: Mapped[list] = mapped_column(JSON, default=list)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    grader: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
