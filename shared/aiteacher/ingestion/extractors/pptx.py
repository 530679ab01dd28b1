"""PowerPoint (.pptx) with python-pptx: one unit per slide (title, text frames, tables, speaker notes).

Slides keep their numbers, so "slide 7" in a citation is the seventh slide the academic sees, even when an
earlier slide holds only a picture.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.extractors import ExtractedDocument, ExtractionLimits, Progress
from aiteacher.ingestion.extractors.ooxml import check_archive, corrupt
from aiteacher.ingestion.extractors.units import numbered, too_many_units
from aiteacher.ingestion.pdf import _sensible_title


def extract(data: bytes, kind: str, limits: ExtractionLimits, progress: Progress) -> ExtractedDocument:
    check_archive(data, "pptx", limits)
    from pptx import Presentation  # lazy: only the worker reads slides

    try:
        presentation = Presentation(io.BytesIO(data))
        slides = list(presentation.slides)
        if len(slides) > limits.max_units:
            raise too_many_units("pptx", len(slides), limits.max_units)
        texts = []
        for index, slide in enumerate(slides, start=1):
            texts.append(slide_text(slide))
            progress("extracting", index, len(slides))
        title = _sensible_title(presentation.core_properties.title)
    except DocumentRejected:
        raise
    except Exception as exc:  # python-pptx raises many kinds (KeyError, lxml, zip) on bad files
        if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("TimeoutException"):
            raise
        raise corrupt("pptx") from exc
    pages = numbered("pptx", texts, limits, keep_empty=True)
    if title is None:
        first = pages[0].text.split("\n", 1)[0] if pages else ""
        title = _sensible_title(first)
    return ExtractedDocument(kind="pptx", pages=pages, page_count=len(pages), title=title)


def slide_text(slide: Any) -> str:
    title_shape = slide.shapes.title
    parts = []
    if title_shape is not None and title_shape.has_text_frame and title_shape.text_frame.text.strip():
        parts.append(title_shape.text_frame.text.strip())
    title_id = title_shape.shape_id if title_shape is not None else None
    # Reading order: top to bottom, then left to right (the order shapes were added is arbitrary).
    shapes = sorted(_shapes(slide.shapes), key=lambda shape: ((shape.top or 0), (shape.left or 0)))
    for shape in shapes:
        if shape.shape_id == title_id:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows]
            parts.append("\n".join(row for row in rows if row.strip(" |")))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = "\n".join(paragraph.text for paragraph in shape.text_frame.paragraphs)
            if text.strip():
                parts.append(text)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            parts.append("Speaker notes: " + notes.text.strip())
    return "\n\n".join(parts)


def _shapes(shapes: Any) -> Iterator[Any]:
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP: its members are shapes too
            yield from _shapes(shape.shapes)
        else:
            yield shape
