"""Word (.docx) with python-docx: a new unit at each heading and each explicit page break.

The body is read in document order (paragraphs and tables interleaved), straight from its XML elements, so
a table stays in the section it belongs to.
"""

from __future__ import annotations

import io
from typing import Any, Final

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.extractors import ExtractedDocument, ExtractionLimits, Progress
from aiteacher.ingestion.extractors.ooxml import check_archive, corrupt
from aiteacher.ingestion.extractors.units import numbered
from aiteacher.ingestion.pdf import _sensible_title

W: Final = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def extract(data: bytes, kind: str, limits: ExtractionLimits, progress: Progress) -> ExtractedDocument:
    check_archive(data, "docx", limits)
    import docx  # lazy: only the worker reads Word files

    try:
        document = docx.Document(io.BytesIO(data))
        sections = _sections(document, limits)
        title = _sensible_title(document.core_properties.title)
    except DocumentRejected:
        raise
    except Exception as exc:  # python-docx raises many kinds (KeyError, lxml, zip) on bad files
        if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("TimeoutException"):
            raise
        raise corrupt("docx") from exc
    progress("extracting", len(sections), len(sections))
    pages = numbered("docx", sections, limits, keep_empty=False)
    if title is None:
        title = _sensible_title(next((s.split("\n", 1)[0] for s in sections if s.strip()), None))
    return ExtractedDocument(kind="docx", pages=pages, page_count=len(pages), title=title)


def _sections(document: Any, limits: ExtractionLimits) -> list[str]:
    heading_styles = {
        style.style_id
        for style in document.styles
        if style.type == 1 and (style.name or "").lower().startswith(("heading", "title"))
    }
    sections: list[list[str]] = [[]]
    chars = 0
    for element in document.element.body.iterchildren():
        if element.tag == f"{W}p":
            style = element.find(f"{W}pPr/{W}pStyle")
            style_id = style.get(f"{W}val") if style is not None else None
            breaks_before = element.find(f"{W}pPr/{W}pageBreakBefore") is not None
            if (style_id in heading_styles or breaks_before) and any(line.strip() for line in sections[-1]):
                sections.append([])
            text = _paragraph_text(element, sections)
        elif element.tag == f"{W}tbl":
            rows = []
            for row in element.iter(f"{W}tr"):
                cells = ["".join(t.text or "" for t in cell.iter(f"{W}t")).strip() for cell in row.iter(f"{W}tc")]
                if any(cells):
                    rows.append(" | ".join(cells))
            text = "\n".join(rows)
        else:
            continue
        chars += len(text)
        if chars > limits.max_total_chars:
            raise DocumentRejected(
                "too_large",
                f"The Word document holds more than {limits.max_total_chars:,} "
                "characters of text, over the limit per document.",
            )
        if text:
            sections[-1].append(text)
    return ["\n".join(lines) for lines in sections]


def _paragraph_text(paragraph: Any, sections: list[list[str]]) -> str:
    """The paragraph's text; a page break inside it starts a new section at that point."""
    pieces: list[str] = []
    for node in paragraph.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}cr"):
        if node.tag == f"{W}t":
            pieces.append(node.text or "")
        elif node.tag == f"{W}tab":
            pieces.append("\t")
        elif node.tag == f"{W}br" and node.get(f"{W}type") == "page":
            before = "".join(pieces).strip()
            if before:
                sections[-1].append(before)
            if any(line.strip() for line in sections[-1]):
                sections.append([])
            pieces = []
        else:
            pieces.append("\n")
    return "".join(pieces).strip()
