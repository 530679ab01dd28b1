"""Documents: creation from uploads and bucket events, access rules, deletion, tenant cache versions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.config import get_settings
from aiteacher.curriculum import repository
from aiteacher.curriculum.repository import find_same_content
from aiteacher.db import after_commit
from aiteacher.db.models import Document, Faculty, Semester, new_id
from aiteacher.enums import DocumentStatus
from aiteacher.errors import Forbidden, NotFound, ValidationFailed
from aiteacher.security.tokens import Claims


def document_view(doc: Document, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    from aiteacher.ingestion.formats import UNITS

    return {
        "id": doc.id,
        "title": doc.title,
        "course": doc.course,
        "faculty_id": doc.faculty_id,
        "semester_id": doc.semester_id,
        "department_id": doc.department_id,
        "status": doc.status,
        "pages": doc.pages,
        "chunks": doc.chunks,
        "error": doc.error,
        "source": doc.source,
        "key": doc.object_key,
        "format": doc.format,
        "unit": UNITS.get(doc.format or "", "page"),
        "ocr_pages": list(doc.ocr_pages or []),
        "progress": _progress_view(doc, progress),
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
    }


def document_views(documents: list[Document]) -> list[dict[str, Any]]:
    """Views with the live progress of the documents being processed (one Redis round trip)."""
    from aiteacher import progress

    recorded = progress.read("document", [doc.id for doc in documents if doc.status == DocumentStatus.PROCESSING])
    return [document_view(doc, recorded.get(doc.id)) for doc in documents]


def _progress_view(doc: Document, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """`{stage, done, total}`: pages for extracting and ocr, chunks for embedding and indexing."""
    if doc.status == DocumentStatus.PROCESSING:
        return recorded or {"stage": "extracting", "done": 0, "total": 0}
    if doc.status == DocumentStatus.READY:
        return {"stage": "done", "done": doc.pages, "total": doc.pages}
    return {"stage": doc.status, "done": 0, "total": 0}


def enqueue_ingestion(session: Session, document_id: str, source: str = "upload") -> None:
    """Queue the ingestion once the document row is committed (job id = document id: enqueued once).
    Bucket events go to the `ingest-bulk` queue, so a burst never starves API uploads."""
    from aiteacher.curriculum.jobs import enqueue_job

    after_commit(session, lambda: enqueue_job(document_id, source))


# --- tenancy versions (search cache) --------------------------------------------------------------


def bump_tenant_version(faculty_id: int | None) -> None:
    """Invalidate cached searches of a faculty (and admin-wide searches) at once."""
    from aiteacher.cache import get_redis, redis_errors

    with redis_errors():
        pipe = get_redis().pipeline()
        pipe.incr("search-ver:all")
        if faculty_id is not None:
            pipe.incr(f"search-ver:f:{faculty_id}")
        pipe.execute()


# --- one document per content, one title rule ---------------------------------------------------


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_title(pdf_title: str | None, name_title: str) -> str:
    """The one title rule, for uploads and bucket drops alike: the PDF's own title when it has a real one,
    else the title made from the file name when the document was created (`keys.title_from_name`)."""
    return (pdf_title or name_title)[:300]


def claim_content(document_id: str, data: bytes, *, title: str | None) -> str | None:
    """Record the file's hash on its document (and the title rule's title). If another document of the same
    tenant and course holds the same bytes, this one is folded into it: its row goes (vectors were never
    written) and the other's id is returned. The unique constraint decides races between two ingestions."""
    from sqlalchemy.exc import IntegrityError

    from aiteacher.db import transaction

    digest = content_hash(data)
    try:
        with transaction() as session:
            doc = session.get(Document, document_id)
            if doc is None:
                return None
            doc.title = document_title(title, doc.title)
            if doc.content_hash == digest:
                return None
            doc.content_hash = digest
            session.flush()
    except IntegrityError:
        pass
    else:
        return None
    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            return None
        original = find_same_content(
            session, faculty_id=doc.faculty_id, semester_id=doc.semester_id, course=doc.course, digest=digest
        )
        if original is None or original.id == doc.id:
            return None
        original_id = original.id
        session.delete(doc)
    audit("document.duplicate", "merged", target=document_id, duplicate_of=original_id)
    return original_id


# --- uploads --------------------------------------------------------------------------------------


def read_upload(stream: BinaryIO) -> tuple[bytes, str]:
    """Read at most INGEST_MAX_BYTES (413 beyond) and sniff the kind from the bytes (415 when it is none
    we ingest). Returns (data, kind); the name the browser sent plays no part."""
    from aiteacher.errors import PayloadTooLarge, UnsupportedMediaType
    from aiteacher.ingestion.formats import sniff

    limit = get_settings().ingest_max_bytes
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The file is larger than the limit of {limit // (1024 * 1024)} MB")
    sniffed = sniff(data)
    if sniffed.kind is None:
        raise UnsupportedMediaType(sniffed.reason, code="unsupported_format")
    return data, sniffed.kind


@dataclass(frozen=True)
class UploadTarget:
    faculty: Faculty
    semester: Semester
    department_id: int | None


def resolve_upload_target(
    session: Session, caller: Claims, faculty_id: int | None, semester_id: int | None
) -> UploadTarget:
    """Where an upload goes, as the access policy says (academics: their faculty; admins: anywhere)."""
    from aiteacher import access

    scope = access.caller_scope(caller, session)
    try:
        faculty_id, semester_id = access.upload_placement(scope, faculty_id, semester_id)
    except Forbidden:
        audit("document.upload", "denied", actor=caller.sub, faculty_id=faculty_id)
        raise
    if faculty_id is None:
        raise ValidationFailed("faculty_id is required", code="validation_error")
    if semester_id is None:
        raise ValidationFailed("semester_id is required (or set a semester in your profile)")
    faculty = session.get(Faculty, faculty_id)
    semester = session.get(Semester, semester_id)
    if faculty is None:
        raise ValidationFailed(f"Faculty {faculty_id} does not exist", code="unknown_faculty")
    if semester is None or semester.faculty_id != faculty.id:
        raise ValidationFailed(
            f"Semester {semester_id} does not belong to faculty {faculty_id}", code="semester_faculty_mismatch"
        )
    department_id = scope.department_id if scope.faculty_id == faculty.id else None
    return UploadTarget(faculty, semester, department_id)


def create_upload(
    session: Session,
    caller: Claims,
    target: UploadTarget,
    *,
    course: str,
    filename: str,
    data: bytes,
    kind: str = "pdf",
) -> tuple[Document, bool]:
    """(document, created now?). The same file already in this tenant's course is that document, not a new
    one. Record the document (ETag = MD5 of the body, what S3 gives a single-part PUT) before the object
    is written, so the bucket's own event for it is recognised as a duplicate, then store it."""
    from aiteacher.curriculum.keys import title_from_name, upload_key
    from aiteacher.ingestion.formats import CONTENT_TYPES, FILE_SUFFIXES
    from aiteacher.storage import put_pdf

    settings = get_settings()
    digest = content_hash(data)
    same = find_same_content(
        session, faculty_id=target.faculty.id, semester_id=target.semester.id, course=course.strip(), digest=digest
    )
    if same is not None and same.status == DocumentStatus.FAILED:
        same.content_hash = None  # a failed copy does not hold the content: this upload is a fresh try
        session.flush()
    elif same is not None:
        audit("document.upload", "duplicate", actor=caller.sub, target=same.id)
        return same, False
    document_id = new_id()
    key = upload_key(
        target.faculty.code, target.semester.number, course, document_id, filename, suffix=FILE_SUFFIXES[kind]
    )
    doc = Document(
        id=document_id,
        title=title_from_name(filename),
        course=course.strip(),
        content_hash=digest,
        faculty_id=target.faculty.id,
        semester_id=target.semester.id,
        department_id=target.department_id,
        status=DocumentStatus.QUEUED,
        source="upload",
        bucket=settings.s3_bucket,
        object_key=key,
        etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        size_bytes=len(data),
        uploaded_by=caller.sub,
    )
    from sqlalchemy.exc import IntegrityError

    try:
        with session.begin_nested():  # a concurrent upload of the same file may have won since the check
            session.add(doc)
    except IntegrityError:
        same = find_same_content(
            session, faculty_id=target.faculty.id, semester_id=target.semester.id, course=course.strip(), digest=digest
        )
        if same is None:
            raise
        audit("document.upload", "duplicate", actor=caller.sub, target=same.id)
        return same, False
    put_pdf(key, data, {"document-id": document_id}, content_type=CONTENT_TYPES[kind])
    enqueue_ingestion(session, document_id)
    audit("document.upload", "queued", actor=caller.sub, target=document_id, key=key, size=len(data), format=kind)
    return doc, True


# --- bucket events --------------------------------------------------------------------------------


def register_object(session: Session, bucket: str, key: str, etag: str, size: int | None) -> tuple[str, bool]:
    """Create the document for one object version, once. Returns (document id, created now?).

    The unique (bucket, key, etag) constraint makes concurrent deliveries of one event insert one row;
    a key outside the layout, or naming an unknown faculty or semester, becomes a failed document."""
    from aiteacher.curriculum.keys import KeyLayoutError, parse_key, title_from_name

    existing = repository.object_document_id(session, bucket, key, etag)
    if existing:
        _requeue_if_stuck(session, existing)
        return existing, False
    values: dict[str, Any] = {
        "id": new_id(),
        "bucket": bucket,
        "object_key": key,
        "etag": etag,
        "size_bytes": size,
        "source": "bucket",
        "status": DocumentStatus.QUEUED,
        "pages": 0,
        "chunks": 0,
        "attempts": 0,
    }
    try:
        placement = parse_key(key)
        values.update(course=placement.course, title=title_from_name(placement.name)[:300])
        faculty = repository.faculty_by_code(session, placement.faculty_code)
        semester = faculty and repository.semester_by_number(session, faculty.id, placement.semester_number)
        if faculty is None:
            raise KeyLayoutError(f"Unknown faculty code '{placement.faculty_code}' in key '{key}'")
        if semester is None:
            raise KeyLayoutError(f"Faculty '{faculty.code}' has no semester {placement.semester_number} (key '{key}')")
        values.update(faculty_id=faculty.id, semester_id=semester.id)
    except KeyLayoutError as exc:
        values.setdefault("course", "")
        values.setdefault("title", key.rsplit("/", 1)[-1][:300] or "Untitled")
        values.update(status=DocumentStatus.FAILED, error=str(exc)[:1000])
    from aiteacher.db.models import utcnow

    values.update(created_at=utcnow(), updated_at=utcnow())
    if not repository.insert_document_once(session, values):
        return str(repository.object_document_id(session, bucket, key, etag)), False
    audit("document.object_created", values["status"], target=values["id"], key=key, error=values.get("error"))
    if values["status"] == DocumentStatus.QUEUED:
        enqueue_ingestion(session, values["id"], source="bucket")
    return values["id"], True


def _requeue_if_stuck(session: Session, document_id: str) -> None:
    """A redelivered event for a document that is queued or processing with no live job re-queues it
    (after this transaction, so no database connection waits on Redis), instead of only answering
    `duplicate`."""
    from aiteacher.curriculum.jobs import requeue_if_stuck

    status = repository.document_status(session, document_id)
    if status in (DocumentStatus.QUEUED, DocumentStatus.PROCESSING):
        after_commit(session, lambda: requeue_if_stuck(document_id))


# --- reading and deleting -------------------------------------------------------------------------


def _caller_faculty(session: Session, caller: Claims) -> int | None:
    """The faculty whose documents the caller may manage (None for admins: all)."""
    from aiteacher import access

    return access.managed_faculty(access.caller_scope(caller, session))


def list_documents(
    session: Session,
    caller: Claims,
    *,
    course: str | None,
    status: str | None,
    faculty_id: int | None,
    limit: int,
    offset: int,
) -> list[Document]:
    own = _caller_faculty(session, caller)
    faculty = own if own is not None else faculty_id
    return repository.documents_page(
        session, faculty_id=faculty, course=course, status=status, limit=limit, offset=offset
    )


def get_document(session: Session, caller: Claims, document_id: str) -> Document:
    from aiteacher import access

    scope = access.caller_scope(caller, session)
    access.managed_faculty(scope)  # students and unplaced academics stop here (403 / 409)
    doc = session.get(Document, document_id)
    # Another faculty's document is indistinguishable from a missing one.
    if doc is None or not access.may_read_document(scope, doc.faculty_id):
        raise NotFound("No such document")
    return doc


def delete_document(session: Session, caller: Claims, document_id: str) -> None:
    """Remove the vectors first (search stops returning it at once), then the object and the row."""
    from aiteacher.storage import delete_object
    from aiteacher.vectors import get_vector_store

    doc = get_document(session, caller, document_id)
    get_vector_store().delete_document(doc.id)
    delete_object(doc.bucket, doc.object_key)
    faculty_id = doc.faculty_id
    session.delete(doc)
    session.flush()
    after_commit(session, lambda: bump_tenant_version(faculty_id))
    audit("document.delete", "ok", actor=caller.sub, target=document_id)


# --- re-indexing ----------------------------------------------------------------------------------


def reindex_all() -> list[str]:
    """Recreate the vector collection with the current layout (dense + lexical vectors) and queue every ready
    document for ingestion again; returns their ids. Search shows a document again once its job is done."""
    import time

    from aiteacher.curriculum.jobs import ingest_document
    from aiteacher.db import transaction
    from aiteacher.vectors import get_vector_store

    get_vector_store().drop_collection()
    with transaction() as session:
        documents = repository.ready_documents(session)
        for doc in documents:
            doc.status = DocumentStatus.QUEUED
            doc.attempts = 0  # a re-index is a fresh start, not a retry of a failing job
        ids = [doc.id for doc in documents]
        faculties = {doc.faculty_id for doc in documents}
    stamp = int(time.time())
    for document_id in ids:
        ingest_document.enqueue(document_id, queue="ingest-bulk", job_id=f"reindex-{document_id}-{stamp}")
    for faculty_id in faculties:
        bump_tenant_version(faculty_id)
    audit("document.reindex", "queued", documents=len(ids))
    return ids
