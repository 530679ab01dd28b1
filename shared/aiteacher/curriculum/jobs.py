"""The ingestion job: object -> pages -> chunks -> embeddings -> vectors, `queued -> processing ->
ready | failed`. Idempotent: an attempt first deletes whatever an earlier (interrupted) attempt indexed
for the document, and point ids are derived from (document, chunk index), so a retried, re-queued or
duplicated job ends with exactly the chunks of one clean run. Attempts are counted on the row and
capped (the reconciler and the job agree on the budget), so a job that kills its worker every time
ends `failed` with a reason instead of `processing` forever."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from aiteacher.audit import audit
from aiteacher.enums import DOCUMENT_DONE, DOCUMENT_PENDING, DocumentStatus
from aiteacher.jobs import StatusGate, job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from aiteacher.config import Settings
    from aiteacher.db.models import Document
    from aiteacher.ingestion.extractors import ExtractedDocument, ExtractionLimits
    from aiteacher.progress import Tracker

log = logging.getLogger("aiteacher.ingest")
EMBED_BATCH = 32  # texts handed to the embedder at once (it runs its own batches of <= 8)


def _set_status(document_id: str, **values: Any) -> Document | None:
    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            return None
        for key, value in values.items():
            setattr(doc, key, value)
        return doc


@job(
    queue="ingest",
    queues=("ingest-bulk",),
    timeout=lambda settings: settings.ingest_job_timeout_seconds,
    job_id=lambda document_id: f"ingest-{document_id}",
    gate=StatusGate("Document", "document_id", done=DOCUMENT_DONE),
)
def ingest_document(document_id: str) -> dict[str, Any]:
    from aiteacher.config import get_settings
    from aiteacher.curriculum.service import bump_tenant_version
    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.errors import PayloadTooLarge
    from aiteacher.ingestion.extractors import DocumentRejected, extract_document
    from aiteacher.progress import Tracker
    from aiteacher.storage import ObjectMissing, get_object

    settings = get_settings()
    started = time.monotonic()
    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:  # deleted since the gate looked
            return {"document_id": document_id, "status": "missing"}
        from aiteacher.reconcile import max_attempts

        if doc.attempts >= max_attempts():
            spent = doc.attempts
            exhausted = True
        else:
            exhausted = False
            doc.status, doc.error, doc.attempts = DocumentStatus.PROCESSING, None, doc.attempts + 1
        bucket, key, faculty_id = doc.bucket, doc.object_key, doc.faculty_id
    if exhausted:
        return give_up(document_id, f"Ingestion gave up after {spent} attempts; upload the document again.")

    try:
        stored = get_object(bucket, key, settings.ingest_max_bytes)
    except ObjectMissing:
        return _fail(document_id, f"The object '{key}' is no longer in bucket '{bucket}'", code="missing")
    except PayloadTooLarge as exc:
        return _fail(document_id, exc.detail, code="too_large")
    progress = Tracker("document", document_id)
    try:
        extracted = extract_document(stored.data, extraction_limits(settings, started), progress=progress.update)
    except DocumentRejected as exc:
        return _fail(document_id, exc.message, code=exc.code)

    from aiteacher.curriculum.service import claim_content

    duplicate_of = claim_content(document_id, stored.data, title=extracted.title)
    if duplicate_of is not None:
        progress.clear()
        return {"document_id": document_id, "status": "duplicate", "duplicate_of": duplicate_of}
    chunk_count = _index(document_id, extracted, progress)
    progress.update("indexing", chunk_count, chunk_count)
    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None:  # deleted while we worked: leave no vectors behind
            from aiteacher.vectors import get_vector_store

            get_vector_store().delete_document(document_id)
            return {"document_id": document_id, "status": "deleted"}
        doc.status, doc.pages, doc.chunks, doc.error = DocumentStatus.READY, extracted.page_count, chunk_count, None
        doc.format, doc.ocr_pages = extracted.kind, list(extracted.ocr_pages) or None
        _supersede_older_versions(session, doc)
    bump_tenant_version(faculty_id)
    progress.clear()
    audit(
        "document.ingest",
        "ready",
        target=document_id,
        pages=extracted.page_count,
        chunks=chunk_count,
        format=extracted.kind,
        ocr_pages=len(extracted.ocr_pages),
    )
    _notify_uploader(document_id)
    return {"document_id": document_id, "status": "ready", "pages": extracted.page_count, "chunks": chunk_count}


def extraction_limits(settings: Settings, started: float) -> ExtractionLimits:
    """The settings' limits for one file; OCR may use 60 % of the job's time, embedding needs the rest."""
    from aiteacher.ingestion.extractors import ExtractionLimits

    return ExtractionLimits(
        max_bytes=settings.ingest_max_bytes,
        max_units=settings.pdf_max_pages,
        max_decompressed_bytes=settings.pdf_max_decompressed_bytes,
        max_zip_entries=settings.ingest_max_zip_entries,
        ocr=settings.ingest_ocr,
        ocr_max_pages=settings.ingest_ocr_max_pages,
        ocr_dpi=settings.ingest_ocr_dpi,
        deadline=started + 0.6 * settings.ingest_job_timeout_seconds,
    )


def _index(document_id: str, extracted: ExtractedDocument, progress: Tracker | None = None) -> int:
    from aiteacher.config import get_settings
    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.embeddings import get_embedder
    from aiteacher.ingestion.chunking import chunk_pages, embedding_text
    from aiteacher.vectors import VectorPoint, chunk_point_id, get_vector_store

    settings = get_settings()
    with transaction(read_only=False) as session:
        doc = session.get(Document, document_id)
        payload_base = (
            {
                "faculty_id": doc.faculty_id,
                "semester_id": doc.semester_id,
                "department_id": doc.department_id,
                "course": doc.course,
                "document_id": doc.id,
                "title": doc.title,
            }
            if doc
            else None
        )
    if payload_base is None:
        return 0
    chunks = chunk_pages(extracted.pages, target_chars=settings.chunk_chars, overlap_chars=settings.chunk_overlap_chars)
    embedder = get_embedder()
    store = get_vector_store()
    store.ensure_collection(embedder.name, embedder.dimension)
    store.delete_document(document_id)  # an interrupted earlier attempt's partial vectors go first
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        # Each chunk is embedded in its context (title, section heading); its lexical vector is too (VectorPoint).
        vectors = embedder.embed([embedding_text(str(payload_base["title"] or ""), chunk) for chunk in batch])
        store.upsert(
            [
                VectorPoint(
                    id=chunk_point_id(document_id, chunk.index),
                    vector=vector,
                    payload={
                        **payload_base,
                        "page": chunk.page,
                        "text": chunk.text,
                        "section": chunk.section,
                        "chunk_index": chunk.index,
                        **unit_payload(extracted, chunk.page),
                    },
                )
                for chunk, vector in zip(batch, vectors, strict=True)
            ]
        )
        if progress is not None:
            progress.update("embedding", start + len(batch), len(chunks))
    return len(chunks)


def unit_payload(extracted: ExtractedDocument, page: int) -> dict[str, Any]:
    """What a chunk's `page` counts (page, slide, section) and whether its text came from OCR."""
    return {"unit": extracted.unit, "ocr": page in extracted.ocr_pages}


def _supersede_older_versions(session: Session, doc: Document) -> None:
    """A new version of a bucket object replaces the old one's vectors and row."""
    from aiteacher.curriculum import repository
    from aiteacher.vectors import get_vector_store

    for old in repository.older_versions(session, doc):
        get_vector_store().delete_document(old.id)
        session.delete(old)
        audit("document.superseded", "ok", target=old.id, replaced_by=doc.id)


def _fail(document_id: str, message: str, code: str) -> dict[str, Any]:
    from aiteacher.progress import Tracker

    _drop_vectors(document_id)
    _set_status(document_id, status=DocumentStatus.FAILED, error=message[:1000])
    Tracker("document", document_id).clear()
    audit("document.ingest", "failed", target=document_id, reason=code)
    _notify_uploader(document_id)
    return {"document_id": document_id, "status": "failed", "error": message}


def _drop_vectors(document_id: str) -> None:
    """A failed document keeps no vectors (search would otherwise find a half-indexed document)."""
    try:
        from aiteacher.vectors import get_vector_store

        get_vector_store().delete_document(document_id)
    except Exception:  # the reconciler and the next attempt delete them too
        log.exception("could not delete the vectors of %s", document_id)


def give_up(document_id: str, message: str) -> dict[str, Any]:
    """No attempt left: `failed` with the reason (only if still queued/processing)."""
    from aiteacher.curriculum import repository
    from aiteacher.db import transaction

    _drop_vectors(document_id)
    with transaction() as session:
        changed = repository.fail_if_pending(session, document_id, message[:1000])
    if changed:
        audit("document.ingest", "failed", target=document_id, reason="attempts_spent")
        _notify_uploader(document_id)
    return {"document_id": document_id, "status": "failed", "error": message}


def requeue_document(document_id: str) -> bool:
    """Enqueue a stuck document's ingestion again (the reconciler, a redelivered bucket event). Its old job,
    if any, is dead: it is discarded so the job id can be reused. False when it is no longer stuck."""
    from aiteacher.curriculum import repository
    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.queue import discard_job

    with transaction() as session:
        doc = session.get(Document, document_id)
        if doc is None or doc.status not in DOCUMENT_PENDING:
            return False
        repository.mark_queued(session, document_id)
        source = doc.source
    discard_job(str(ingest_document.job_id(document_id)))
    enqueue_job(document_id, source)
    audit("document.ingest", "requeued", target=document_id)
    return True


def requeue_if_stuck(document_id: str) -> bool:
    """Re-queue the document only if no job is waiting, scheduled or running for it."""
    from aiteacher.queue import job_is_live

    return not job_is_live(str(ingest_document.job_id(document_id))) and requeue_document(document_id)


def enqueue_job(document_id: str, source: str) -> None:
    """Uploads go to `ingest`; bucket events to `ingest-bulk`, which workers serve after it."""
    ingest_document.enqueue(document_id, queue="ingest" if source == "upload" else "ingest-bulk")


@ingest_document.on_failure
def _ingestion_failed(document_id: str, reason: str) -> None:
    """No retry left (timeout, crash): say so on the document."""
    _fail(
        document_id,
        f"Processing {reason}; the document could not be ingested. Try uploading it again.",
        code="job_failed",
    )


ingest_failed = ingest_document.failed  # the callback path that jobs enqueued before `aiteacher.jobs` name


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
