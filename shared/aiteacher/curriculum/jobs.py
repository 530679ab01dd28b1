"""The ingestion job: object -> pages -> chunks -> embeddings -> vectors, `queued -> processing ->
ready | failed`. Idempotent: point ids are derived from (document, chunk index), so a retried or
duplicated job overwrites the same points and ends with the same chunk count."""

from __future__ import annotations

import logging
from typing import Any

from aiteacher.audit import audit

log = logging.getLogger("aiteacher.ingest")
EMBED_BATCH = 32  # texts handed to the embedder at once (it runs its own batches of <= 8)


def _set_status(document_id: str, **values: Any) -> Any:
    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            return None
        for key, value in values.items():
            setattr(doc, key, value)
        return doc


def ingest_document(document_id: str) -> dict[str, Any]:
    from aiteacher.config import get_settings
    from aiteacher.curriculum.service import bump_tenant_version
    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.errors import PayloadTooLarge
    from aiteacher.ingestion.pdf import PdfLimits, PdfRejected, extract_pages
    from aiteacher.storage import ObjectMissing, get_object

    settings = get_settings()
    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            return {"document_id": document_id, "status": "missing"}
        if doc.status in ("ready", "failed"):
            return {"document_id": document_id, "status": doc.status, "skipped": True}
        doc.status, doc.error, doc.attempts = "processing", None, doc.attempts + 1
        bucket, key, faculty_id = doc.bucket, doc.object_key, doc.faculty_id

    try:
        stored = get_object(bucket, key, settings.ingest_max_bytes)
    except ObjectMissing:
        return _fail(document_id, f"The object '{key}' is no longer in bucket '{bucket}'", code="missing")
    except PayloadTooLarge as exc:
        return _fail(document_id, exc.detail, code="too_large")
    try:
        limits = PdfLimits(max_bytes=settings.ingest_max_bytes, max_pages=settings.pdf_max_pages,
                           max_decompressed_bytes=settings.pdf_max_decompressed_bytes)
        extracted = extract_pages(stored.data, limits)
    except PdfRejected as exc:
        return _fail(document_id, exc.message, code=exc.code)

    from aiteacher.curriculum.service import claim_content

    duplicate_of = claim_content(document_id, stored.data, title=extracted.title)
    if duplicate_of is not None:
        return {"document_id": document_id, "status": "duplicate", "duplicate_of": duplicate_of}
    chunk_count = _index(document_id, extracted)
    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:  # deleted while we worked: leave no vectors behind
            from aiteacher.vectors import get_vector_store

            get_vector_store().delete_document(document_id)
            return {"document_id": document_id, "status": "deleted"}
        doc.status, doc.pages, doc.chunks, doc.error = "ready", extracted.page_count, chunk_count, None
        _supersede_older_versions(session, doc)
    bump_tenant_version(faculty_id)
    audit("document.ingest", "ready", target=document_id, pages=extracted.page_count, chunks=chunk_count)
    _notify_uploader(document_id)
    return {"document_id": document_id, "status": "ready", "pages": extracted.page_count, "chunks": chunk_count}


def _index(document_id: str, extracted: Any) -> int:
    from aiteacher.config import get_settings
    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.embeddings import get_embedder
    from aiteacher.ingestion.chunking import chunk_pages
    from aiteacher.vectors import VectorPoint, chunk_point_id, get_vector_store

    settings = get_settings()
    with transaction(read_only=False) as session:
        doc = session.get(Document, document_id)
        payload_base = {"faculty_id": doc.faculty_id, "semester_id": doc.semester_id,
                        "department_id": doc.department_id, "course": doc.course, "document_id": doc.id,
                        "title": doc.title} if doc else None
    if payload_base is None:
        return 0
    chunks = chunk_pages(extracted.pages, target_chars=settings.chunk_chars, overlap_chars=settings.chunk_overlap_chars)
    embedder = get_embedder()
    store = get_vector_store()
    store.ensure_collection(embedder.name, embedder.dimension)
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start:start + EMBED_BATCH]
        vectors = embedder.embed([chunk.text for chunk in batch])
        store.upsert([
            VectorPoint(id=chunk_point_id(document_id, chunk.index), vector=vector,
                        payload={**payload_base, "page": chunk.page, "text": chunk.text, "chunk_index": chunk.index})
            for chunk, vector in zip(batch, vectors, strict=True)
        ])
    return len(chunks)


def _supersede_older_versions(session: Any, doc: Any) -> None:
    """A new version of a bucket object replaces the old one's vectors and row."""
    from sqlalchemy import select

    from aiteacher.db.models import Document
    from aiteacher.vectors import get_vector_store

    older = session.scalars(select(Document).where(
        Document.bucket == doc.bucket, Document.object_key == doc.object_key, Document.id != doc.id,
        Document.created_at <= doc.created_at)).all()
    for old in older:
        get_vector_store().delete_document(old.id)
        session.delete(old)
        audit("document.superseded", "ok", target=old.id, replaced_by=doc.id)


def _fail(document_id: str, message: str, code: str) -> dict[str, Any]:
    _set_status(document_id, status="failed", error=message[:1000])
    audit("document.ingest", "failed", target=document_id, reason=code)
    _notify_uploader(document_id)
    return {"document_id": document_id, "status": "failed", "error": message}


def ingest_failed(job: Any, connection: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """RQ failure callback: when no retry is left (timeout, crash), say so on the document."""
    retries_left = getattr(job, "retries_left", 0) or 0
    if retries_left > 0:
        return
    document_id = job.args[0] if job.args else None
    if not document_id:
        return
    reason = "timed out" if exc_type is not None and "Timeout" in exc_type.__name__ else "failed unexpectedly"
    log.error("ingestion of %s %s: %s", document_id, reason, exc_value)
    _fail(document_id, f"Processing {reason}; the document could not be ingested. Try uploading it again.",
          code="job_failed")


def _notify_uploader(document_id: str) -> None:
    """Tell the uploader the outcome (the notifications queue; never fails this job)."""
    try:
        from aiteacher.notifications import notify_document_outcome
    except ImportError:
        return
    try:
        notify_document_outcome(document_id)
    except Exception:
        log.exception("could not queue the notification for %s", document_id)
