"""Markdown (and plain text) and HTML: a new unit at each heading. Pure Python (stdlib `html.parser`)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

from aiteacher.ingestion.extractors import ExtractedDocument, ExtractionLimits, Progress
from aiteacher.ingestion.extractors.units import numbered
from aiteacher.ingestion.pdf import _sensible_title

_ATX: Final = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT: Final = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_IMAGE: Final = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK: Final = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS: Final = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_SKIPPED_TAGS: Final = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object", "canvas"}
)
_BLOCK_TAGS: Final = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "figure",
        "figcaption",
        "hr",
        "main",
        "nav",
        "aside",
        "form",
        "address",
    }
)
_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def extract(data: bytes, kind: str, limits: ExtractionLimits, progress: Progress) -> ExtractedDocument:
    text = _decode(data)
    sections, title = _html_sections(text) if kind == "html" else _markdown_sections(text)
    progress("extracting", len(sections), len(sections))
    pages = numbered(kind, sections, limits, keep_empty=False)
    return ExtractedDocument(
        kind="html" if kind == "html" else "markdown", pages=pages, page_count=len(pages), title=_sensible_title(title)
    )


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # older HTML pages; never fails


def _markdown_sections(text: str) -> tuple[list[str], str | None]:
    sections: list[list[str]] = [[]]
    title = None
    fence = None
    lines = text.replace("\r\n", "\n").split("\n")
    for line in lines:
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)[0]
            fence = None if fence == marker else (fence or marker)
            continue
        heading = None
        if fence is None:
            atx = _ATX.match(line)
            if atx:
                heading = atx.group(2)
                title = title or (heading if len(atx.group(1)) == 1 else None)
            elif _SETEXT.match(line) and sections[-1] and sections[-1][-1].strip():
                heading = sections[-1].pop()  # the line above was the heading
                title = title or (heading if line.lstrip().startswith("=") else None)
        if heading is not None:
            if any(piece.strip() for piece in sections[-1]):
                sections.append([])
            sections[-1].append(_inline(heading))
        else:
            sections[-1].append(_inline(line) if fence is None else line)
    return ["\n".join(lines) for lines in sections], title


def _inline(line: str) -> str:
    line = _IMAGE.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    return _EMPHASIS.sub(r"\2", line)


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[list[str]] = [[]]
        self.skipping: list[str] = []
        self.title: str | None = None
        self.h1: str | None = None
        self._in_title = False
        self._heading: list[str] | None = None
        self._cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED_TAGS:
            self.skipping.append(tag)
        elif tag in _HEADINGS and not self.skipping:
            if "".join(self.sections[-1]).strip():
                self.sections.append([])
            self._heading = [] if tag == "h1" and self.h1 is None else None
            self.sections[-1].append("\n")
        elif tag in _BLOCK_TAGS:
            self.sections[-1].append("\n")
        elif tag == "tr":
            self._cells = 0
            self.sections[-1].append("\n")
        elif tag in ("td", "th"):
            self._cells += 1
            if self._cells > 1:
                self.sections[-1].append(" | ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.sections[-1].append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if self.skipping and tag == self.skipping[-1]:
            self.skipping.pop()
        elif tag in _HEADINGS:
            if self._heading is not None:
                self.h1 = "".join(self._heading).strip() or None
                self._heading = None
            self.sections[-1].append("\n")
        elif tag in _BLOCK_TAGS:
            self.sections[-1].append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title and self.title is None:
            self.title = data.strip() or None
        if self.skipping:
            return
        if self._heading is not None:
            self._heading.append(data)
        self.sections[-1].append(" ".join(data.split(" ")) if "\n" not in data else " ".join(data.split()))


def _html_sections(text: str) -> tuple[list[str], str | None]:
    parser = _Sections()
    parser.feed(text)
    parser.close()
    return ["".join(pieces) for pieces in parser.sections], parser.title or parser.h1
