"""Shared by the extractors: raw unit texts -> normalised, numbered, bounded `PageText`s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.extractors import ExtractionLimits
from aiteacher.ingestion.pdf import PageText, normalize_text

_ANY_LETTER: Final = re.compile(r"[^\W\d_]")
NAMES: Final = {"pptx": "presentation", "docx": "Word document", "markdown": "text", "html": "HTML page", "pdf": "PDF"}


def has_letters(text: str) -> bool:
    return _ANY_LETTER.search(text) is not None


def too_many_units(kind: str, count: int, limit: int) -> DocumentRejected:
    what = "slides" if kind == "pptx" else "sections"
    return DocumentRejected(
        "too_many_pages",
        f"The {NAMES[kind]} has more than {limit:,} {what}, the limit per "
        "document. Split it into smaller files and upload them separately.",
    )


def numbered(kind: str, texts: Sequence[str], limits: ExtractionLimits, *, keep_empty: bool) -> list[PageText]:
    """Normalise unit texts and number them from 1. Slides keep empty units (slide 7 stays slide 7);
    sections drop theirs. Raises `DocumentRejected` when over the character limits or without any text."""
    max_unit = limits.max_chars_per_unit
    max_total = limits.max_total_chars
    max_units = limits.max_units
    pages: list[PageText] = []
    total = 0
    for raw in texts:
        if len(raw) > max_unit:
            raise DocumentRejected(
                "too_large",
                f"A part of the {NAMES[kind]} holds more than {max_unit:,} "
                "characters of text; the file looks damaged or inflated.",
            )
        total += len(raw)
        if total > max_total:
            raise DocumentRejected(
                "too_large",
                f"The {NAMES[kind]} holds more than {max_total:,} characters of "
                "text, over the limit per document. Split it into smaller files.",
            )
        text = normalize_text(raw)
        if not keep_empty and not has_letters(text):
            continue
        pages.append(PageText(number=len(pages) + 1, text=text))
    if len(pages) > max_units:
        raise too_many_units(kind, len(pages), max_units)
    if not any(has_letters(page.text) for page in pages):
        raise DocumentRejected(
            "no_text",
            f"The {NAMES[kind]} contains no text to learn from (it may hold only "
            "images). Add the text, or upload a PDF export of it.",
        )
    return pages
