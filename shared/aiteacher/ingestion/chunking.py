"""Page-aware chunking of extracted PDF text for embedding and retrieval.

`chunk_pages` cuts every page on its own (a chunk never spans two pages, so each chunk cites one page), into
chunks of at most `target_chars` characters that end at the strongest nearby boundary: a blank line, then the
end of a sentence that ends a line, then any sentence end, then a line break or clause punctuation, then any
space; never inside a word. Consecutive chunks of a page overlap by up to `overlap_chars` characters, starting
at a sentence start when there is one inside the overlap, else at a word start. A page's last chunk carries no
whole earlier sentence: after a chunk that ends at a sentence end it starts right there (its overlap would be a
sentence of whatever came before, e.g. a licence line above a new heading, and would drag its score towards
that), else at the start of the sentence the previous chunk cut. A chunk's text is an exact
slice of its page's text (`page.text[chunk.start:chunk.end]`). The output is a pure function of the input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from aiteacher.ingestion.pdf import PageText
from aiteacher.text import REAL_TEXT, context_text, ends_sentence, heading_at, is_heading

__all__ = [
    "DEFAULT_MIN_CHARS",
    "DEFAULT_OVERLAP_CHARS",
    "DEFAULT_TARGET_CHARS",
    "Chunk",
    "chunk_pages",
    "embedding_text",
]

DEFAULT_TARGET_CHARS: Final = 1000
DEFAULT_OVERLAP_CHARS: Final = 200
DEFAULT_MIN_CHARS: Final = 200
MIN_TARGET_CHARS: Final = 16


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    """Position in the document, 0..n-1 in page order."""
    page: int
    """1-based page number the whole chunk comes from."""
    text: str
    start: int = 0
    """Offset of `text` in the page's text (as passed to `chunk_pages`)."""
    end: int = 0
    """Offset just past `text` in the page's text."""
    section: str = ""
    """The heading the chunk falls under: the last heading line at or before its start, on its page or an
    earlier one ("" before the first heading)."""


# Boundary strengths, strongest first.
PARAGRAPH, SENTENCE_LINE, SENTENCE, CLAUSE = 4, 3, 2, 1
# (minimum strength, minimum chunk length as a fraction of target_chars): the first tier with a boundary wins,
# and within a tier the latest boundary, so chunks stay close to target_chars. After these, any space will do.
_TIERS: Final = ((PARAGRAPH, 0.5), (SENTENCE_LINE, 0.8), (SENTENCE, 0.5), (CLAUSE, 0.75))

# Boundaries are whitespace runs: a chunk ends where a run starts, the next chunk begins where one ends. One
# pass finds the runs that follow sentence or clause punctuation or hold a line break; each alternative starts
# with a fixed character class so the regex engine skips ordinary text quickly. A sentence ends with . ! ? or an
# ellipsis, maybe followed by a closing quote or bracket, where `aiteacher.text.ends_sentence` says so (the next
# word does not start in lower case, and no abbreviation or initial precedes: "e.g. the", "Fig. 3", "H. M. had").
_BOUNDARY: Final = re.compile(
    r"[.!?\u2026][\"')\]}\u2019\u201d\u00bb]?(?P<sentence>\s++)"
    r"|[,;:](?P<clause>\s++)"
    r"|(?P<line>\n\s*+)"
)
_SPACE_RUN: Final = re.compile(r"\s++")
_NON_SPACE: Final = re.compile(r"\S")
_REAL_TEXT: Final = REAL_TEXT  # a letter or a digit
_DIGITS: Final = re.compile(r"\d+")
_LOOKAHEAD: Final = 64  # characters scanned past a window, so that boundaries at its edge are seen whole


def chunk_pages(
    pages: Iterable[PageText],
    *,
    target_chars: int = DEFAULT_TARGET_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    min_chars: int = DEFAULT_MIN_CHARS,
) -> list[Chunk]:
    """Split pages into overlapping, page-aware chunks.

    Every chunk holds at most `target_chars` characters. Unless words nearly half as long as `target_chars`
    stand in the way, a page's chunks other than its last hold at least `min_chars` (and more than
    `overlap_chars`), and its last chunk brings at least `min_chars` of new text, so no chunk is a tiny
    leftover. A page whose whole text is shorter still gives one chunk if it holds any letter or digit; pages
    without one give none. A word longer than `target_chars` (a pasted URL, garbage) is the only thing ever cut.
    """
    _validate(target_chars, overlap_chars, min_chars)
    pages = list(pages)
    repeated = _repeated_lines(pages)
    chunks: list[Chunk] = []
    section = ""
    for page in pages:
        headings = _headings(page.text, repeated)
        body = _body(page.text, repeated)
        for start, end in _page_spans(page.text, target_chars, overlap_chars, min_chars, body):
            while headings and headings[0][0] <= start:
                section = headings.pop(0)[1]
            chunks.append(
                Chunk(
                    index=len(chunks),
                    page=page.number,
                    text=page.text[start:end],
                    start=start,
                    end=end,
                    section=section,
                )
            )
        if headings:
            section = headings[-1][1]
    return chunks


def _shape(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split()).lower())


def _repeated_lines(pages: list[PageText]) -> frozenset[str]:
    """Running heads and feet: short lines that are no sentence (at most 80 characters, not ending in . ! ?) found
    on at least two pages and 30 % of them, digits aside ("Legislatures | Page 12 of 13")."""
    counts: dict[str, int] = {}
    for page in pages:
        lines = {line.strip() for line in page.text.split("\n")}
        for shape in {_shape(line) for line in lines if line and len(line) <= 80 and line[-1] not in ".!?"}:
            counts[shape] = counts.get(shape, 0) + 1
    floor = max(2, 0.3 * len(pages))
    return frozenset(shape for shape, count in counts.items() if count >= floor)


def _body(text: str, repeated: frozenset[str]) -> tuple[int, int]:
    """The page's text without its running head and foot: the span between the repeated lines at its top and
    at its bottom (a footer like "Legislatures | Page 12 of 13" would otherwise join the page's last chunk and
    match every question about legislatures). A page with nothing else keeps them."""
    lines = text.split("\n")
    low, high = 0, len(lines)
    while low < high and (not lines[low].strip() or _shape(lines[low]) in repeated):
        low += 1
    while high > low and (not lines[high - 1].strip() or _shape(lines[high - 1]) in repeated):
        high -= 1
    start = sum(len(line) + 1 for line in lines[:low])
    end = start + sum(len(line) + 1 for line in lines[low:high]) - 1 if high > low else start
    if _REAL_TEXT.search(text, start, max(start, end)) is None:
        return 0, len(text)  # nothing but running lines: the page keeps them, so that it still has a chunk
    return start, max(start, end)


def _headings(text: str, repeated: frozenset[str]) -> list[tuple[int, str]]:
    """(offset, heading) of each heading line of a page, in order; a heading's short continuation line
    ("Systems?") is joined to it."""
    lines = text.split("\n")
    found: list[tuple[int, str]] = []
    offset = 0
    for index, line in enumerate(lines):
        if _shape(line) not in repeated and heading_at(lines, index):
            heading = " ".join(line.split())
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            if heading[-1] != "?" and 0 < len(following) <= 40 and is_heading(following):
                heading = f"{heading} {following}"
            found.append((offset, heading[:200]))
        offset += len(line) + 1
    return found


def _validate(target_chars: int, overlap_chars: int, min_chars: int) -> None:
    if target_chars < MIN_TARGET_CHARS:
        raise ValueError(f"target_chars must be at least {MIN_TARGET_CHARS}, got {target_chars}")
    if not 0 <= overlap_chars <= target_chars // 2:
        raise ValueError(f"overlap_chars must be between 0 and target_chars // 2, got {overlap_chars}")
    if not 0 <= min_chars <= target_chars // 2:
        raise ValueError(f"min_chars must be between 0 and target_chars // 2, got {min_chars}")


def _page_spans(
    text: str, target: int, overlap: int, min_chars: int, body: tuple[int, int] | None = None
) -> list[tuple[int, int]]:
    low, high = body if body is not None else (0, len(text))
    if _REAL_TEXT.search(text, low, high) is None:
        return []
    first = low + len(text[low:high]) - len(text[low:high].lstrip())
    last = len(text[:high].rstrip())
    min_length = max(min_chars, overlap + 1)
    spans: list[tuple[int, int]] = []
    start = first
    while last - start > target:
        end, next_word = _choose_end(text, start, last, target, min_length, min_chars)
        spans.append((start, end))
        following = _next_start(text, start, end, next_word, overlap)
        if last - following <= target and last - next_word >= max(min_chars, 1):  # the page's last chunk
            following = _tail_start(text, start, end, next_word, overlap, last, following)
        start = following
    spans.append((start, last))
    return spans


def _run_end(text: str, position: int, last: int) -> int:
    """Where the whitespace run that reaches `position` ends."""
    found = _NON_SPACE.search(text, position, last)
    return found.start() if found is not None else last


def _boundaries(text: str, lowest: int, highest: int, last: int) -> Iterator[tuple[int, int, int]]:
    """(run start, run end, strength) of the boundaries whose run starts in [lowest, highest], in order.

    Runs between two words that only hold spaces are not reported (see `_last_space_run`).
    """
    stop = min(last, highest + _LOOKAHEAD)
    for match in _BOUNDARY.finditer(text, max(lowest - 2, 0), stop):  # the punctuation precedes the run
        kind = match.lastgroup or "line"
        run_start, run_end = match.span(kind)
        if kind == "line":
            while run_start > 0 and text[run_start - 1].isspace():  # spaces before the line break
                run_start -= 1
        if run_start > highest:
            return
        if run_start < lowest:
            continue
        if run_end == stop:
            run_end = _run_end(text, run_end, last)
        newlines = text.count("\n", run_start, run_end)
        if newlines >= 2:
            yield run_start, run_end, PARAGRAPH
        elif kind == "sentence" and ends_sentence(
            text[max(0, run_start - 24) : run_start], text[run_end : run_end + 4]
        ):
            yield run_start, run_end, SENTENCE_LINE if newlines else SENTENCE
        elif newlines or kind == "clause":
            yield run_start, run_end, CLAUSE


def _last_space_run(text: str, lowest: int, highest: int, max_next: int, last: int) -> tuple[int, int] | None:
    """The last whitespace run starting in [lowest, highest] whose next word starts at or before max_next."""
    found = None
    stop = min(last, highest + _LOOKAHEAD)
    for match in _SPACE_RUN.finditer(text, lowest, stop):
        run_start, run_end = match.span()
        if run_start > highest:
            break
        if run_start == lowest and text[run_start - 1].isspace():
            continue  # the tail of a run that starts before lowest
        if run_end == stop:
            run_end = _run_end(text, run_end, last)
        if run_end > max_next:
            break
        found = run_start, run_end
    return found


def _choose_end(text: str, start: int, last: int, target: int, min_length: int, min_chars: int) -> tuple[int, int]:
    """Where the chunk starting at `start` ends, and where the word after that end starts."""
    limit = start + target  # the chunk must fit in target
    max_next = last - min_chars  # leave min_chars after the chunk: no tiny leftover chunk at the end of a page
    lowest = [start + max(min_length, int(target * fraction)) for _, fraction in _TIERS]
    best: list[tuple[int, int] | None] = [None] * len(_TIERS)
    for run_start, run_end, strength in _boundaries(text, start + min_length, limit, last):
        if run_end > max_next:
            break
        for tier, (level, _) in enumerate(_TIERS):
            if strength >= level and run_start >= lowest[tier]:
                best[tier] = run_start, run_end
    for candidate in best:
        if candidate is not None:
            return candidate
    found = _last_space_run(text, start + min_length, limit, max_next, last)
    # Only very long words stand in the way: give up the tail rule, then the minimum length.
    found = found or _last_space_run(text, start + min_length, limit, last, last)
    found = found or _last_space_run(text, start + 1, limit, last, last)
    return found or (limit, limit)  # one word longer than target: the only place a word is ever cut


def _tail_start(text: str, start: int, end: int, next_word: int, overlap: int, last: int, default: int) -> int:
    """Where a page's last chunk starts: at `next_word` after a sentence end, else at the latest sentence start
    inside the overlap (the start of the sentence that was cut), else where `_next_start` put it."""
    for run_start, _, strength in _boundaries(text, end, end, last):
        if run_start == end and strength >= SENTENCE:
            return next_word
    if overlap == 0:
        return default
    window = max(end - overlap, start + 1)
    latest = None
    for _, run_end, strength in _boundaries(text, max(window - _LOOKAHEAD, start + 1), end - 1, end):
        if strength >= SENTENCE and window <= run_end < end:
            latest = run_end
    return latest if latest is not None else default


def _next_start(text: str, start: int, end: int, next_word: int, overlap: int) -> int:
    """The next chunk starts inside the overlap, at a sentence start if possible, else at a word start."""
    if overlap == 0:
        return next_word
    window = max(end - overlap, start + 1)
    for _, run_end, strength in _boundaries(text, max(window - _LOOKAHEAD, start + 1), end - 1, end):
        if strength >= SENTENCE and window <= run_end < end:
            return run_end
    for match in _SPACE_RUN.finditer(text, window - 1, end):
        if match.end() >= window:
            return match.end() if match.end() < end else next_word
    return next_word


def embedding_text(title: str, chunk: Chunk) -> str:
    """What a chunk's dense vector is computed from: its context (the document's title and the chunk's section
    heading) on a line of its own, then the chunk. A chunk alone often does not say what it is about:
    "-k keeps the input files" is about bzip2 only by its title."""
    context = context_text(title, chunk.section)
    return f"{context}\n\n{chunk.text}" if context else chunk.text
