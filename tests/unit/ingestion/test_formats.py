"""Sniffing by content, the extractors' units, the OOXML bomb guards and OCR accuracy on rendered text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.extractors import ExtractionLimits, extract_document
from aiteacher.ingestion.formats import sniff
from tests.fixtures.make_documents import docx_bytes, pptx_bytes, render_text_pages, zip_bomb
from tests.helpers import make_pdf


@pytest.mark.parametrize(
    "data,kind",
    [
        (make_pdf([["A page."]]), "pdf"),
        (pptx_bytes([{"title": "Slide"}]), "pptx"),
        (docx_bytes([(None, ["Text."])]), "docx"),
        (b"# Notes\n\nPlain text is Markdown too.", "markdown"),
        ("Übung: Gödel's theorem, ½ of it".encode(), "markdown"),
        (b"\xef\xbb\xbf<!DOCTYPE html><html><body>x</body></html>", "html"),
        (b"<!-- generated -->\n<html lang=en>", "html"),
        (b"  \n<p>Fragment of a page</p>", "html"),
    ],
)
def test_sniffing_reads_the_bytes_not_the_name(data: bytes, kind: str) -> None:
    assert sniff(data).kind == kind


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "legacy office"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a format"),
        (b"GIF89a" + bytes(200), "not a format"),
        (b"PK\x03\x04" + bytes(40), "zip archive"),
    ],
)
def test_sniffing_refuses_other_kinds_with_a_reason(data: bytes, words: str) -> None:
    sniffed = sniff(data)
    assert sniffed.kind is None and words in sniffed.reason.lower()


def test_sniffing_imports_no_format_library() -> None:
    """The ingest function sniffs every upload: it must stay pure Python."""
    probe = (
        "import sys, json; from aiteacher.ingestion.formats import sniff; sniff(b'PK\\x03\\x04' + bytes(99)); "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    )
    assert not loaded & {"pptx", "docx", "pypdfium2", "rapidocr", "numpy", "lxml", "PIL", "pypdf", "onnxruntime"}


def test_markdown_sections_ignore_headings_in_code_and_keep_setext_headings() -> None:
    doc = extract_document(
        b"Intro line.\n\n# First\n\nBody one.\n```\n# not a heading\n```\n"
        b"Second\n======\n\nBody [two](http://example.org) with **bold**.\n"
    )
    assert [page.text for page in doc.pages] == [
        "Intro line.",
        "First\n\nBody one.\n# not a heading",
        "Second\n\nBody two with bold.",
    ]
    assert doc.unit == "section" and doc.title == "First"


def test_html_sections_skip_scripts_and_keep_tables_in_place() -> None:
    doc = extract_document(
        b"<html><head><title>Course page</title><script>var h1 = 'x';</script></head><body>"
        b"<h1>Heaps</h1><p>A heap keeps the minimum on top.</p><h2>Costs</h2>"
        b"<table><tr><th>push</th><th>pop</th></tr><tr><td>log n</td><td>log n</td></tr></table>"
        b"</body></html>"
    )
    assert [page.text for page in doc.pages] == [
        "Heaps\n\nA heap keeps the minimum on top.",
        "Costs\n\npush | pop\nlog n | log n",
    ]
    assert doc.title == "Course page"


def test_slides_without_text_keep_the_numbering() -> None:
    doc = extract_document(pptx_bytes([{"title": "One"}, {}, {"title": "Three", "notes": "Say it slowly."}]))
    assert [page.number for page in doc.pages] == [1, 2, 3]
    assert doc.pages[1].text == "" and doc.pages[2].text == "Three\n\nSpeaker notes: Say it slowly."


@pytest.mark.parametrize("kind", ["docx", "pptx"])
def test_zip_bombs_are_refused_before_anything_is_inflated(kind: str) -> None:
    with pytest.raises(DocumentRejected) as refused:
        extract_document(zip_bomb(kind, 64 * 1024 * 1024), ExtractionLimits(max_decompressed_bytes=32 * 1024 * 1024))
    assert refused.value.code == "too_large" and "zip bomb" in refused.value.message


def test_too_many_parts_are_refused() -> None:
    with pytest.raises(DocumentRejected) as refused:
        extract_document(docx_bytes([(None, ["x"])]), ExtractionLimits(max_zip_entries=10))
    assert refused.value.code == "too_large" and "parts" in refused.value.message


def character_accuracy(expected: str, recognised: str) -> float:
    """1 - (Levenshtein distance / expected length), on whitespace-normalised text."""
    a, b = " ".join(expected.split()), " ".join(recognised.split())
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return 1 - previous[-1] / max(len(a), 1)


OCR_PAGE = [
    "A binary heap is a complete binary tree stored in an array.",
    "The parent of node i sits at index (i - 1) / 2; its children at 2i + 1 and 2i + 2.",
    "Insertion appends the key and sifts it up: O(log n) comparisons.",
    "Dijkstra's algorithm uses a min-heap keyed by tentative distance.",
]


def test_ocr_reads_a_clean_300_dpi_page_with_at_least_95_percent_character_accuracy() -> None:
    from aiteacher.ingestion.ocr import recognise_image

    image = render_text_pages([OCR_PAGE], dpi=300)[0]
    assert character_accuracy("\n".join(OCR_PAGE), recognise_image(image)) >= 0.95


def test_character_accuracy_counts_edits() -> None:
    assert character_accuracy("abcd", "abcd") == 1.0
    assert character_accuracy("abcd", "abed") == 0.75
    assert character_accuracy("a  b\nc", "a b c") == 1.0


def test_a_worker_without_the_ocr_engine_ingests_the_text_pages_and_explains_scans(monkeypatch) -> None:
    from tests.fixtures.make_documents import scanned_pdf, text_then_scanned_pdf

    mixed_pdf = text_then_scanned_pdf([["Queues are first in, first out."]], [["Scanned."]])
    scan = scanned_pdf([["Only a scan."]])
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # as on a worker built without the `formats` extra
    mixed = extract_document(mixed_pdf)
    assert [page.text for page in mixed.pages] == ["Queues are first in, first out.", ""] and mixed.ocr_pages == ()
    with pytest.raises(DocumentRejected) as refused:
        extract_document(scan)
    assert refused.value.code == "no_text" and "no text recognition" in refused.value.message
