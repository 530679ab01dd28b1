"""Benchmark: `extract_pages` + `chunk_pages` against a raw pypdf extraction loop on the same PDFs.

    python bench/bench_extraction.py [--rounds 7] [--repeat 4] [--eval-dir ../shared/eval] [--min-ratio 0.8]

The anchor is the bare loop `PdfReader(...).pages[i].extract_text()` measured in the same run, interleaved
round by round with our pipeline, so the printed ratio (ours / raw, in pages per second; goal >= 0.8) does not
depend on how fast or busy this machine is. It also prints how our chunks compare with the fixed-window
baseline (1,000-character windows with 200 overlap inside a page).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = REPO_ROOT.parent / "shared" / "eval"
EVAL_PDFS = (
    "psychology-biopsychology-nervous-system.pdf",
    "philosophy-epistemology.pdf",
    "political-science-legislatures.pdf",
)
GOAL_RATIO = 0.8


def raw_pypdf(documents: list[bytes]) -> int:
    from pypdf import PdfReader

    pages = 0
    for data in documents:
        reader = PdfReader(io.BytesIO(data))
        for index in range(len(reader.pages)):
            reader.pages[index].extract_text()
            pages += 1
    return pages


def ours(documents: list[bytes]) -> int:
    from aiteacher.ingestion.chunking import chunk_pages
    from aiteacher.ingestion.pdf import extract_pages

    pages = 0
    for data in documents:
        extracted = extract_pages(data)
        chunk_pages(extracted.pages)
        pages += extracted.page_count
    return pages


def pages_per_second(run: Callable[[list[bytes]], int], documents: list[bytes]) -> float:
    started = time.perf_counter()
    pages = run(documents)
    return pages / (time.perf_counter() - started)


def baseline_windows(text: str, size: int = 1000, overlap: int = 200) -> list[tuple[int, int]]:
    return [(i, min(i + size, len(text))) for i in range(0, max(len(text) - overlap, 1), size - overlap)]


def cuts_a_word(text: str, start: int, end: int) -> bool:
    return (start > 0 and not text[start - 1].isspace() and not text[start].isspace()) or (
        end < len(text) and not text[end - 1].isspace() and not text[end].isspace()
    )


def chunk_report(documents: list[bytes]) -> None:
    from aiteacher.ingestion.chunking import chunk_pages
    from aiteacher.ingestion.pdf import extract_pages

    ours_count = ours_cuts = ours_chars = base_count = base_cuts = base_chars = 0
    for data in documents:
        pages = extract_pages(data).pages
        texts = {page.number: page.text for page in pages}
        chunks = chunk_pages(pages)
        ours_count += len(chunks)
        ours_chars += sum(len(chunk.text) for chunk in chunks)
        ours_cuts += sum(cuts_a_word(texts[chunk.page], chunk.start, chunk.end) for chunk in chunks)
        for page in pages:
            if page.text:
                windows = baseline_windows(page.text)
                base_count += len(windows)
                base_chars += sum(end - start for start, end in windows)
                base_cuts += sum(cuts_a_word(page.text, start, end) for start, end in windows)
    print(f"{'chunks':<28}{'count':>8}{'mean chars':>12}{'cut a word':>12}")
    print(f"{'fixed 1000/200 (baseline)':<28}{base_count:>8}{base_chars / base_count:>12.0f}{base_cuts:>12}")
    print(f"{'chunk_pages (1000/200)':<28}{ours_count:>8}{ours_chars / ours_count:>12.0f}{ours_cuts:>12}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per side (median is reported)")
    parser.add_argument("--repeat", type=int, default=4, help="passes over the PDFs per round")
    parser.add_argument("--min-ratio", type=float, default=None, help="exit 1 if ours/raw falls below this")
    args = parser.parse_args(argv)

    paths = [args.eval_dir / name for name in EVAL_PDFS]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        print(f"skipped: eval PDFs not found ({', '.join(str(path) for path in missing)})")
        return 0
    documents = [path.read_bytes() for path in paths] * args.repeat
    page_total = raw_pypdf(documents[: len(paths)])
    print(f"PDFs: {len(paths)} ({page_total} pages) x {args.repeat} passes per round, {args.rounds} rounds")

    raw_pypdf(documents)  # warm-up: imports, caches
    ours(documents)
    raw_rates: list[float] = []
    our_rates: list[float] = []
    for _ in range(args.rounds):
        raw_rates.append(pages_per_second(raw_pypdf, documents))
        our_rates.append(pages_per_second(ours, documents))
    raw, mine = statistics.median(raw_rates), statistics.median(our_rates)
    ratio = mine / raw
    print(f"raw pypdf extract_text loop     {raw:8.1f} pages/s  (min {min(raw_rates):.1f}, max {max(raw_rates):.1f})")
    print(f"extract_pages + chunk_pages     {mine:8.1f} pages/s  (min {min(our_rates):.1f}, max {max(our_rates):.1f})")
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"ratio ours/raw                  {ratio:8.2f}x  (goal >= {GOAL_RATIO}x: {verdict})")
    print()
    chunk_report(documents[: len(paths)])
    if args.min_ratio is not None and ratio < args.min_ratio:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
