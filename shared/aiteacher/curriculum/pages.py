"""Pages students open from a citation: the text and a PNG rendering of one page of a ready document.

Both are made from the stored PDF with pypdfium2 on first request and cached in the object store under
`_pages/<document id>/<page>.{txt,png}` (not a `.pdf`, so the bucket's object-created event ignores them).
Who may open a page is `can_read_pages`, the one place to swap for the shared access policy.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from aiteacher.db.models import Document
from aiteacher.enums import DocumentStatus
from aiteacher.errors import NotFound
from aiteacher.security.tokens import Claims

CACHE_PREFIX = "_pages"
#: Rendering scale: 1.5 x 72 dpi = 108 dpi, legible on a phone and about 100 KB per page.
RENDER_SCALE = 1.5


@dataclass(frozen=True)
class PageRef:
    document_id: str
    title: str
    page: int
    pages: int
    bucket: str
    key: str


def can_read_pages(session: Session, caller: Claims, doc: Document) -> bool:
    """The one access policy decides (`access.may_open_pages`); an unknown caller reads nothing."""
    from aiteacher import access

    try:
        scope = access.caller_scope(caller, session)
    except NotFound:
        return False
    return access.may_open_pages(scope, faculty_id=doc.faculty_id, semester_id=doc.semester_id)


def page_ref(session: Session, caller: Claims, document_id: str, page: int) -> PageRef:
    """The page if the caller may open it; 404 alike for a missing, foreign or not-ready document and a page
    number outside the document."""
    doc = session.get(Document, document_id)
    if doc is None or doc.status != DocumentStatus.READY or not can_read_pages(session, caller, doc):
        raise NotFound("No such document")
    if not 1 <= page <= doc.pages:
        raise NotFound(f"The document has pages 1 to {doc.pages}", code="no_such_page")
    return PageRef(doc.id, doc.title, page, doc.pages, doc.bucket, doc.object_key)


def page_text(ref: PageRef) -> str:
    return _cached(ref, "txt", lambda pdf: _extract_text(pdf, ref.page)).decode()


def page_png(ref: PageRef) -> bytes:
    return _cached(ref, "png", lambda pdf: _render_png(pdf, ref.page))


def _cached(ref: PageRef, suffix: str, make: Callable[[bytes], bytes]) -> bytes:
    from aiteacher.config import get_settings
    from aiteacher.storage import ObjectMissing, get_object, get_s3

    cache_key = f"{CACHE_PREFIX}/{ref.document_id}/{ref.page}.{suffix}"
    settings = get_settings()
    try:
        return get_object(ref.bucket, cache_key, settings.ingest_max_bytes).data
    except ObjectMissing:
        pass
    try:
        pdf = get_object(ref.bucket, ref.key, settings.ingest_max_bytes).data
    except ObjectMissing as exc:
        raise NotFound("The document's file is no longer stored") from exc
    from aiteacher.ingestion.ocr import PDFIUM_LOCK

    with PDFIUM_LOCK:  # PDFium is not thread-safe; dev workers render and OCR in this process too
        data = make(pdf)
    content_type = "image/png" if suffix == "png" else "text/plain; charset=utf-8"
    get_s3().put_object(Bucket=ref.bucket, Key=cache_key, Body=data, ContentType=content_type)
    return data


def _open(pdf: bytes, page: int) -> tuple[Any, Any]:
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    if not 1 <= page <= len(document):
        document.close()
        raise NotFound("No such page", code="no_such_page")
    return document, document[page - 1]


def _extract_text(pdf: bytes, page: int) -> bytes:
    document, pdf_page = _open(pdf, page)
    try:
        text_page = pdf_page.get_textpage()
        text = text_page.get_text_bounded()
        text_page.close()
    finally:
        pdf_page.close()
        document.close()
    return text.replace("\r\n", "\n").encode()


def _render_png(pdf: bytes, page: int) -> bytes:
    document, pdf_page = _open(pdf, page)
    try:
        bitmap = pdf_page.render(scale=RENDER_SCALE, grayscale=True)
        width, height, stride = bitmap.width, bitmap.height, bitmap.stride
        raw = bytes(bitmap.buffer)
        bitmap.close()
    finally:
        pdf_page.close()
        document.close()
    return encode_gray_png(raw, width, height, stride)


def encode_gray_png(raw: bytes, width: int, height: int, stride: int) -> bytes:
    """An 8-bit grayscale PNG from rows of `stride` bytes (no Pillow needed)."""
    rows = b"".join(b"\x00" + raw[y * stride : y * stride + width] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")
