"""Benchmark: each extractor (units/s) next to the raw library call on the same file, and OCR accuracy.

    python bench/bench_formats.py [--rounds 3] [--units 40] [--ocr-pages 3]

For every kind the anchor is the bare library loop a developer would write first, measured in the same run,
rounds alternating anchor/ours (ABBA), medians compared:

- pptx: `Presentation(...)` and `shape.text_frame.text` of every shape of every slide (python-pptx);
- docx: `Document(...)` and `paragraph.text` of every paragraph (python-docx);
- pdf (text layer): `PdfReader(...).pages[i].extract_text()` (pypdf);
- html: a bare `html.parser.HTMLParser` fed the page; markdown: `bytes.decode` + `splitlines`;
- OCR: RapidOCR on the whole rendered 300-dpi page (pypdfium2) against ours (render, crop to the ink, OCR).

OCR accuracy is 1 - Levenshtein / length on pages rendered (Helvetica 10 pt, 300 dpi) from known text.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.make_documents import docx_bytes, pptx_bytes, render_text_pages, scanned_pdf  # noqa: E402
from tests.fixtures.make_pdfs import text_pdf  # noqa: E402
from tests.unit.ingestion.test_formats import character_accuracy  # noqa: E402

SENTENCES = [
    "Breadth-first search visits the vertices of a graph level by level from the source.",
    "A binary heap keeps the smallest key at the root and restores order in logarithmic time.",
    "Dynamic programming stores the answers of overlapping subproblems in a table.",
    "The master theorem bounds the running time of divide-and-conquer recurrences.",
    "Hash tables resolve collisions by chaining or by open addressing with probing.",
]


def documents(units: int) -> dict[str, bytes]:
    lines = [SENTENCES[(i + j) % len(SENTENCES)] for i in range(units) for j in range(4)]
    slides = [
        {"title": f"Topic {i + 1}", "bullets": lines[4 * i : 4 * i + 3], "notes": lines[4 * i + 3]}
        for i in range(units)
    ]
    sections = [(f"Topic {i + 1}", lines[4 * i : 4 * i + 4]) for i in range(units)]
    markdown = "\n\n".join(f"## Topic {i + 1}\n\n" + "\n".join(lines[4 * i : 4 * i + 4]) for i in range(units))
    html = (
        "<html><body>"
        + "".join(
            f"<h2>Topic {i + 1}</h2>" + "".join(f"<p>{line}</p>" for line in lines[4 * i : 4 * i + 4])
            for i in range(units)
        )
        + "</body></html>"
    )
    return {
        "pptx": pptx_bytes(slides),
        "docx": docx_bytes(sections),
        "pdf": text_pdf([lines[4 * i : 4 * i + 4] for i in range(units)]),
        "markdown": markdown.encode(),
        "html": html.encode(),
    }


def raw_pptx(data: bytes) -> int:
    from pptx import Presentation

    slides = list(Presentation(io.BytesIO(data)).slides)
    for slide in slides:
        "\n".join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame)
        if slide.has_notes_slide:
            slide.notes_slide.notes_text_frame.text  # noqa: B018 - reading is the work
    return len(slides)


def raw_docx(data: bytes) -> int:
    import docx

    document = docx.Document(io.BytesIO(data))
    "\n".join(paragraph.text for paragraph in document.paragraphs)
    return sum(1 for p in document.paragraphs if p.style.name.startswith("Heading"))


def raw_pdf(data: bytes) -> int:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    for page in reader.pages:
        page.extract_text()
    return len(reader.pages)


def raw_html(data: bytes) -> int:
    from html.parser import HTMLParser

    parser = HTMLParser()
    parser.feed(data.decode())
    parser.close()
    return data.count(b"<h2>")


def raw_markdown(data: bytes) -> int:
    data.decode().splitlines()
    return data.count(b"\n## ") + 1


def ours(data: bytes) -> int:
    from aiteacher.ingestion.extractors import ExtractionLimits, extract_document

    return extract_document(data, ExtractionLimits(ocr=False)).page_count


def rate(run: Callable[[bytes], int], data: bytes) -> float:
    started = time.perf_counter()
    units = run(data)
    return units / (time.perf_counter() - started)


def compare(
    anchor: Callable[[bytes], int], subject: Callable[[bytes], int], data: bytes, rounds: int
) -> tuple[float, float]:
    anchor(data), subject(data)  # warm up imports and caches
    a, b = [], []
    for index in range(rounds):
        order = ((anchor, a), (subject, b)) if index % 2 == 0 else ((subject, b), (anchor, a))
        for run, sink in order:
            sink.append(rate(run, data))
    return statistics.median(a), statistics.median(b)


def ocr_bench(pages: int, rounds: int) -> None:
    import numpy as np
    import pypdfium2 as pdfium

    from aiteacher.ingestion import ocr

    texts = [[SENTENCES[(p + j) % len(SENTENCES)] for j in range(6)] for p in range(pages)]
    scan = scanned_pdf(texts)

    def raw(_: bytes) -> int:
        document = pdfium.PdfDocument(scan)
        for index in range(len(document)):
            image = document[index].render(scale=300 / 72).to_pil().convert("RGB")
            ocr._engine()(np.asarray(image))
        return len(document)

    def mine(_: bytes) -> int:
        return len(ocr.recognise_pdf_pages(scan, range(1, pages + 1), dpi=300, deadline=None))

    anchor, subject = compare(raw, mine, scan, rounds)
    print(f"{'ocr (scanned pdf)':<20}{anchor:>12.2f}{subject:>12.2f}{subject / anchor:>9.2f}")
    accuracies = []
    for lines, image in zip(texts, render_text_pages(texts, dpi=300), strict=True):
        accuracies.append(character_accuracy("\n".join(lines), ocr.recognise_image(image)))
    print(
        f"\nOCR character accuracy on {pages} clean 300-dpi pages (Helvetica 10 pt, {len(texts[0])} lines each): "
        f"min {min(accuracies):.4f}, mean {statistics.mean(accuracies):.4f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units", type=int, default=40, help="slides / sections / pages per document")
    parser.add_argument("--ocr-pages", type=int, default=3)
    args = parser.parse_args()
    docs = documents(args.units)
    anchors = {"pptx": raw_pptx, "docx": raw_docx, "pdf": raw_pdf, "html": raw_html, "markdown": raw_markdown}
    print(f"{'kind':<20}{'raw units/s':>12}{'ours':>12}{'ratio':>9}")
    for kind, anchor in anchors.items():
        raw_rate, our_rate = compare(anchor, ours, docs[kind], args.rounds)
        print(f"{kind:<20}{raw_rate:>12.1f}{our_rate:>12.1f}{our_rate / raw_rate:>9.2f}")
    if args.ocr_pages:
        ocr_bench(args.ocr_pages, max(1, args.rounds - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
