"""One interface for every format: bytes in, numbered page-like units out (`extract_document`).

The kind comes from `aiteacher.ingestion.formats.sniff` (the bytes, never the name); each kind has a small
extractor module here, imported only when a file of that kind arrives, that returns an `ExtractedDocument`
or raises `DocumentRejected` with a readable message. Units are 1-based and are what search results and
citations call `page`: a PDF page, a slide, or a section (a heading or page break starts one) of a Word,
Markdown or HTML document.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.formats import UNITS, Kind, sniff
from aiteacher.ingestion.pdf import MB, PageText

__all__ = ["DocumentRejected", "ExtractedDocument", "ExtractionLimits", "Progress", "extract_document"]

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "extracting" or "ocr"; units (pages) done of total."""

_EXTRACTORS: Final[dict[str, str]] = {
    "pdf": "aiteacher.ingestion.extractors.pdf",
    "pptx": "aiteacher.ingestion.extractors.pptx",
    "docx": "aiteacher.ingestion.extractors.docx",
    "markdown": "aiteacher.ingestion.extractors.text",
    "html": "aiteacher.ingestion.extractors.text",
}


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """Resource limits for one file, whatever its kind (the settings fill them in the worker)."""

    max_bytes: int = 50 * MB
    max_units: int = 500
    """Pages, slides or sections."""
    max_decompressed_bytes: int = 200 * MB
    """PDF streams, or the parts of an OOXML zip, decompressed, for the whole file."""
    max_zip_entries: int = 5_000
    max_chars_per_unit: int = 200_000
    max_total_chars: int = 10_000_000
    ocr: bool = True
    """Recognise pages without a text layer (PDF only)."""
    ocr_max_pages: int = 100
    ocr_dpi: int = 300
    deadline: float | None = None
    """time.monotonic() after which OCR gives up (the job's own timeout stays the hard stop)."""


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    kind: Kind
    pages: list[PageText]
    """Every unit in order; `number` is what citations point to."""
    page_count: int
    title: str | None = None
    ocr_pages: tuple[int, ...] = field(default=())
    """Units whose text was recognised from a rendered image."""

    @property
    def unit(self) -> str:
        return UNITS[self.kind]


def extract_document(
    data: bytes | bytearray | memoryview, limits: ExtractionLimits | None = None, progress: Progress | None = None
) -> ExtractedDocument:
    """Sniff the kind and run its extractor. Raises `DocumentRejected` for anything that cannot be ingested."""
    limits = limits or ExtractionLimits()
    size = memoryview(data).nbytes
    if size == 0:
        raise DocumentRejected("empty", "The file is empty.")
    if size > limits.max_bytes:
        raise DocumentRejected(
            "too_large", f"The file is {size / MB:.1f} MB, over the limit of {limits.max_bytes / MB:g} MB per document."
        )
    sniffed = sniff(data)
    if sniffed.kind is None:
        raise DocumentRejected("unsupported_format", sniffed.reason)
    module = importlib.import_module(_EXTRACTORS[sniffed.kind])
    report = progress or _no_progress
    return module.extract(bytes(data), sniffed.kind, limits, report)


def _no_progress(stage: str, done: int, total: int) -> None:
    return None
