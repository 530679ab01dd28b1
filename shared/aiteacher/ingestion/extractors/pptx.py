"""PowerPoint (.pptx) with python-pptx: one unit per slide (title, text frames, tables, speaker notes).

Slides keep their numbers, so "slide 7" in a citation is the seventh slide the academic sees, even when an
earlier slide holds only a picture.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, Final

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
        inherited: dict[tuple[str, int, str], tuple[int, int]] = {}
        for index, slide in enumerate(slides, start=1):
            texts.append(slide_text(slide, inherited))
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


def slide_text(slide: Any, inherited: dict[tuple[str, int, str], tuple[int, int]] | None = None) -> str:
    """The slide's title, then its other shapes in reading order, then its speaker notes. `inherited`
    caches layout positions across the slides of one presentation."""
    inherited = {} if inherited is None else inherited
    title_shape = slide.shapes.title
    parts = []
    if title_shape is not None and title_shape.has_text_frame and title_shape.text_frame.text.strip():
        parts.append(title_shape.text_frame.text.strip())
    title_id = title_shape.shape_id if title_shape is not None else None
    # Reading order: top to bottom, then left to right (the order shapes were added is arbitrary).
    shapes = sorted(_shapes(slide.shapes), key=lambda shape: _position(shape, slide, inherited))
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


_OFFSET: Final = "{http://schemas.openxmlformats.org/drawingml/2006/main}off"


def _position(shape: Any, slide: Any, inherited: dict[tuple[str, int, str], tuple[int, int]]) -> tuple[int, int]:
    """(top, left): the shape's own offset when it has one; a placeholder that inherits its place from the
    layout is looked up once per (layout, placeholder), since python-pptx resolves the inheritance per call."""
    offset = shape._element.find(f".//{_OFFSET}")
    if offset is not None:
        return int(offset.get("y", 0)), int(offset.get("x", 0))
    if not getattr(shape, "is_placeholder", False):
        return (shape.top or 0), (shape.left or 0)
    key = (str(slide.slide_layout.part.partname), shape._element.ph_idx, str(shape._element.ph_type))
    if key not in inherited:
        inherited[key] = (shape.top or 0), (shape.left or 0)
    return inherited[key]


def _shapes(shapes: Any) -> Iterator[Any]:
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP: its members are shapes too
            yield from _shapes(shape.shapes)
        else:
            yield shape
