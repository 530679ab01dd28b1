"""PDF: the text layer per page (`aiteacher.ingestion.pdf`), and OCR for pages that have none."""

from __future__ import annotations

import re
from typing import Final

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.extractors import ExtractedDocument, ExtractionLimits, Progress
from aiteacher.ingestion.pdf import PageText, PdfLimits, extract_pages, normalize_text

MIN_LAYER_LETTERS: Final = 16
"""A page whose text layer holds fewer letters (none, or a page number and a stray header) is recognised."""
_LETTER: Final = re.compile(r"[^\W\d_]")


def _letters(text: str) -> int:
    return len(_LETTER.findall(text))


def extract(data: bytes, kind: str, limits: ExtractionLimits, progress: Progress) -> ExtractedDocument:
    pdf_limits = PdfLimits(
        max_bytes=limits.max_bytes,
        max_pages=limits.max_units,
        max_decompressed_bytes=limits.max_decompressed_bytes,
        max_chars_per_page=limits.max_chars_per_unit,
        max_total_chars=limits.max_total_chars,
    )
    extracted = extract_pages(
        data, pdf_limits, require_text=not limits.ocr, progress=lambda done, total: progress("extracting", done, total)
    )
    pages = extracted.pages
    scanned = [page.number for page in pages if _letters(page.text) < MIN_LAYER_LETTERS] if limits.ocr else []
    if not scanned:
        return ExtractedDocument(kind="pdf", pages=pages, page_count=extracted.page_count, title=extracted.title)
    if len(scanned) > limits.ocr_max_pages:
        raise DocumentRejected(
            "too_many_pages",
            f"The PDF has {len(scanned):,} scanned pages without a text layer; "
            f"text recognition (OCR) handles at most {limits.ocr_max_pages:,} "
            "per document. Split it, or upload a PDF with selectable text.",
        )
    from aiteacher.ingestion.ocr import OcrDeadline, recognise_pdf_pages

    try:
        recognised = recognise_pdf_pages(
            data,
            scanned,
            dpi=limits.ocr_dpi,
            deadline=limits.deadline,
            progress=lambda done: progress("ocr", done, len(scanned)),
        )
    except OcrDeadline as exc:
        raise DocumentRejected(
            "too_slow",
            f"Text recognition (OCR) of the {len(scanned):,} scanned pages did not "
            f"finish in time ({exc}). Split the PDF into smaller files.",
        ) from exc
    except ImportError as exc:  # a worker built without the `formats` extra: no OCR engine here
        if any(_letters(page.text) for page in pages):
            return ExtractedDocument(kind="pdf", pages=pages, page_count=extracted.page_count, title=extracted.title)
        raise DocumentRejected(
            "no_text",
            "The PDF has no text layer and this server has no text recognition (OCR) "
            "installed. Upload a PDF with selectable text.",
        ) from exc
    except Exception as exc:
        if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("TimeoutException"):
            raise
        raise DocumentRejected(
            "corrupt",
            "The PDF's scanned pages could not be rendered for text recognition; "
            "the file may be damaged. Export it again and upload the new file.",
        ) from exc
    ocr_pages = []
    merged = []
    for page in pages:
        text = normalize_text(recognised.get(page.number, ""))
        if page.number in recognised and _letters(text) > _letters(page.text):
            merged.append(PageText(number=page.number, text=text))
            ocr_pages.append(page.number)
        else:
            merged.append(page)
    if not any(_letters(page.text) for page in merged):
        raise DocumentRejected(
            "no_text",
            "The PDF contains no text: it has no text layer and text recognition "
            "(OCR) found no readable text on its pages. If it is a scan, check that "
            "the scan is legible, or upload a PDF with selectable text.",
        )
    return ExtractedDocument(
        kind="pdf", pages=merged, page_count=extracted.page_count, title=extracted.title, ocr_pages=tuple(ocr_pages)
    )
