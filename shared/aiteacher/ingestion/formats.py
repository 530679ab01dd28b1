"""What kind of file an upload is, decided from its bytes (never its name), in pure Python.

`sniff` is what the ingest function runs on every upload, so it imports nothing beyond the standard library
(`zipfile` reads the OOXML central directory; no parser for the formats themselves is loaded). The worker runs
it again on the stored object and picks the extractor from its answer.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["BUCKET_SUFFIXES", "CONTENT_TYPES", "FILE_SUFFIXES", "UNITS", "Kind", "Sniffed", "sniff"]

Kind = Literal["pdf", "pptx", "docx", "markdown", "html"]

UNITS: Final[dict[str, str]] = {
    "pdf": "page",
    "pptx": "slide",
    "docx": "section",
    "markdown": "section",
    "html": "section",
}
"""What a unit number (`page` in search results and citations) counts, per kind."""
CONTENT_TYPES: Final[dict[str, str]] = {
    "pdf": "application/pdf",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
FILE_SUFFIXES: Final[dict[str, str]] = {
    "pdf": ".pdf",
    "pptx": ".pptx",
    "docx": ".docx",
    "markdown": ".md",
    "html": ".html",
}
BUCKET_SUFFIXES: Final = (".pdf", ".pptx", ".docx", ".md", ".markdown", ".html", ".htm")
"""Keys the bucket path hands to the worker. A cheap pre-filter for junk (.DS_Store, images); the worker still
decides by content, so a mislabelled file is read as what it is or fails with a readable error."""

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_HTML_STARTS: Final = (
    "<!doctype html",
    "<html",
    "<head",
    "<body",
    "<meta",
    "<title",
    "<h1",
    "<div",
    "<p>",
    "<p ",
    "<section",
    "<article",
    "<main",
)
_SNIFF_CHARS: Final = 4096
_LOCAL_HEADER_SCAN: Final = 256 * 1024
_SUPPORTED: Final = "PDF, PowerPoint (.pptx), Word (.docx), Markdown or HTML"


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: Kind | None
    """None: not a format we ingest; `reason` says what it looks like instead."""
    reason: str = ""


def sniff(data: bytes | bytearray | memoryview) -> Sniffed:
    head = bytes(data[:_SNIFF_CHARS])
    if not head:
        return Sniffed(None, "The file is empty.")
    if b"%PDF-" in head[:1024]:
        return Sniffed("pdf")
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(data)
    if head.startswith(_OLE_MAGIC):
        return Sniffed(
            None,
            "The file is a legacy Office document (.ppt or .doc). Save it as .pptx or .docx (or "
            "export a PDF) and upload it again.",
        )
    text = _as_text(head)
    if text is None:
        return Sniffed(None, f"The file is not a format that can be ingested: upload {_SUPPORTED}.")
    start = text.lstrip("\ufeff \t\r\n").lower()
    while start.startswith("<!--"):  # leading comments before the doctype
        end = start.find("-->")
        start = start[end + 3 :].lstrip() if end >= 0 else ""
    if start.startswith(_HTML_STARTS) or "<html" in start[:1024] or "<body" in start[:1024]:
        return Sniffed("html")
    return Sniffed("markdown")


def _as_text(head: bytes) -> str | None:
    """The head as text when it is UTF-8 (a multi-byte character cut at the end is fine) without NULs."""
    if b"\x00" in head:
        return None
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
        return text if printable >= 0.97 * len(text) else None
    return None


def _sniff_zip(data: bytes | bytearray | memoryview) -> Sniffed:
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        # A cut-off upload has no central directory; the local headers at its start still name its parts, so
        # it is recognised here and rejected by its extractor as damaged (a `failed` document that says so).
        local_names = bytes(data[:_LOCAL_HEADER_SCAN])
        if b"ppt/" in local_names:
            return Sniffed("pptx")
        if b"word/" in local_names:
            return Sniffed("docx")
        return Sniffed(
            None,
            "The file looks like a zip archive (an Office document?) but is damaged or "
            "incomplete. Save or export it again and upload the new file.",
        )
    if "[Content_Types].xml" in names and "ppt/presentation.xml" in names:
        return Sniffed("pptx")
    if "[Content_Types].xml" in names and "word/document.xml" in names:
        return Sniffed("docx")
    if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
        return Sniffed(None, "Spreadsheets (.xlsx) are not ingested: export the material as PDF.")
    return Sniffed(None, f"The file is a zip archive, not a document: upload {_SUPPORTED}.")
