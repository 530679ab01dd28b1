"""The curriculum domain's SQL: documents by content, by object version and by tenant, and the hierarchy
rows a bucket key names.

Statements only; who may read or manage a document is the access policy's (`aiteacher.access`).
Loading a document by id (`session.get`) and changing a loaded row stay in the services.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aiteacher.db import rows_affected
from aiteacher.db.models import Document, Faculty, Semester, utcnow
from aiteacher.enums import DOCUMENT_PENDING, DocumentStatus


def find_same_content(
    session: Session, *, faculty_id: int | None, semester_id: int | None, course: str, digest: str
) -> Document | None:
    return session.scalar(
        select(Document).where(
            Document.faculty_id == faculty_id,
            Document.semester_id == semester_id,
            Document.course == course,
            Document.content_hash == digest,
        )
    )


def object_document_id(session: Session, bucket: str, key: str, etag: str) -> str | None:
    """The document of one object version, if it has one."""
    return session.scalar(
        select(Document.id).where(Document.bucket == bucket, Document.object_key == key, Document.etag == etag)
    )


def insert_document_once(session: Session, values: dict[str, Any]) -> bool:
    """Insert the document unless its (bucket, key, etag) exists: concurrent deliveries insert one row.
    True when this call inserted it."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(Document).values(**values).on_conflict_do_nothing(index_elements=["bucket", "object_key", "etag"])
    )
    return rows_affected(session, statement) == 1


def faculty_by_code(session: Session, code: str) -> Faculty | None:
    return session.scalar(select(Faculty).where(Faculty.code == code))


def semester_by_number(session: Session, faculty_id: int, number: int) -> Semester | None:
    return session.scalar(select(Semester).where(Semester.faculty_id == faculty_id, Semester.number == number))


def document_status(session: Session, document_id: str) -> str | None:
    return session.scalar(select(Document.status).where(Document.id == document_id))


def documents_page(
    session: Session, *, faculty_id: int | None, course: str | None, status: str | None, limit: int, offset: int
) -> list[Document]:
    """Documents newest first; `faculty_id` None means every faculty's."""
    query = select(Document)
    if faculty_id is not None:
        query = query.where(Document.faculty_id == faculty_id)
    if course:
        query = query.where(Document.course == course)
    if status:
        query = query.where(Document.status == status)
    return list(session.scalars(query.order_by(Document.created_at.desc(), Document.id).limit(limit).offset(offset)))


def ready_documents(session: Session) -> list[Document]:
    return list(session.scalars(select(Document).where(Document.status == DocumentStatus.READY)))


def older_versions(session: Session, doc: Document) -> list[Document]:
    """The other, not newer documents of the same bucket object (a new version supersedes them)."""
    return list(
        session.scalars(
            select(Document).where(
                Document.bucket == doc.bucket,
                Document.object_key == doc.object_key,
                Document.id != doc.id,
                Document.created_at <= doc.created_at,
            )
        ).all()
    )


def fail_if_pending(session: Session, document_id: str, error: str) -> bool:
    """`failed` with the reason, only if still queued/processing; True when the row changed."""
    return bool(
        rows_affected(
            session,
            update(Document)
            .where(Document.id == document_id, Document.status.in_(DOCUMENT_PENDING))
            .values(status=DocumentStatus.FAILED, error=error, updated_at=utcnow()),
        )
    )


def mark_queued(session: Session, document_id: str) -> None:
    """Back to `queued` (a re-enqueued ingestion)."""
    session.execute(
        update(Document).where(Document.id == document_id).values(status=DocumentStatus.QUEUED, updated_at=utcnow())
    )


def ready_titles(session: Session, document_ids: list[str]) -> dict[str, str]:
    """The title of each of these documents that is `ready`."""
    rows = session.execute(
        select(Document.id, Document.title).where(
            Document.id.in_(document_ids), Document.status == DocumentStatus.READY
        )
    )
    return {str(row.id): row.title for row in rows}
