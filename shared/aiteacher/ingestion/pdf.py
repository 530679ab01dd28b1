"""Text extraction from untrusted PDF uploads, page by page, with hard resource limits.

`extract_pages` turns the bytes of an uploaded PDF into normalised text per page (1-based page numbers, so
answers can cite pages) or raises `PdfRejected`, the only exception malformed input can produce. Its `code`
is stable and machine-readable, its `message` is written for the academic who uploaded the file:

==================  ==========================================================================
code                meaning
==================  ==========================================================================
``empty``           the file has no bytes
``not_pdf``         no ``%PDF-`` header in the first 1024 bytes
``corrupt``         truncated, damaged, or otherwise unreadable
``encrypted``       password-protected (even with an empty user password)
``too_many_pages``  more pages than `PdfLimits.max_pages`
``too_large``       file size, decompressed size, parsing work or amount of text over the limits
``no_text``         no extractable text at all (e.g. a scan; `extractors.pdf` then tries OCR)
==================  ==========================================================================

Limits: pypdf's own decompression and parsing limits are set through its `Configuration`, which pypdf 7
keeps in a `ContextVar`, so concurrent extractions in threads never see each other's limits and nothing global
is mutated. On top of that we keep a running total of decompressed bytes (content streams, fonts, form
XObjects) and of extracted characters across the whole document. pypdf has no time limit: the job layer owns
the timeout; per-page work is bounded by the page cap and pypdf's per-stream parsing budget.

pypdf is imported inside the functions, never at module import, so functions that do not read PDFs do not
pay for it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.text import ANY_LETTER, LETTER_WORD, LETTERS

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "ExtractedPdf",
    "PageText",
    "PdfLimits",
    "PdfRejected",
    "RejectionCode",
    "extract_pages",
    "normalize_text",
]

MB: Final = 1024 * 1024
PDF_MAGIC: Final = b"%PDF-"
MAGIC_SEARCH_BYTES: Final = 1024

RejectionCode = Literal["empty", "not_pdf", "corrupt", "encrypted", "too_many_pages", "too_large", "no_text"]


class PdfRejected(DocumentRejected):
    """A PDF that cannot be ingested. `code` is stable and machine-readable; `message` is shown to users."""

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(code, message)
        self.code: RejectionCode = code


@dataclass(frozen=True, slots=True)
class PdfLimits:
    """Resource limits for one PDF. The defaults suit lecture material: slides, handouts, book chapters."""

    max_bytes: int = 50 * MB
    """Largest accepted file."""
    max_pages: int = 500
    max_decompressed_bytes: int = 200 * MB
    """Running total of decompressed stream data (page contents, fonts, form XObjects) for the whole file."""
    max_stream_bytes: int = 50 * MB
    """Largest single decompressed stream (pypdf's per-filter output limits)."""
    max_chars_per_page: int = 200_000
    """A dense A4 page holds about 6,000 characters; far more means a hostile or broken file."""
    max_total_chars: int = 10_000_000
    max_operations_per_page: int = 1_000_000
    """pypdf's parsing budget per content stream (operands and operators), which bounds per-page work."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PdfLimits.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class PageText:
    number: int
    """1-based page number, as printed by PDF viewers and cited in answers."""
    text: str
    """Normalised text; empty for a page without a text layer."""


@dataclass(frozen=True, slots=True)
class ExtractedPdf:
    pages: list[PageText]
    """Every page in order, including pages without text (their `text` is empty)."""
    page_count: int
    title: str | None
    """The document title from the PDF metadata, when it looks like a real title."""


# --------------------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------------------


def extract_pages(
    data: bytes | bytearray | memoryview,
    limits: PdfLimits | None = None,
    *,
    require_text: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractedPdf:
    """Extract normalised text per page from an untrusted PDF.

    `require_text=False` returns the pages even when none has text (the caller recognises them with OCR);
    `progress(pages done, page count)` is called after each page. Raises `PdfRejected` for every kind of
    malformed, hostile or unusable input; no other exception escapes
    for bad input. (A timeout raised into this call by the job layer is re-raised unchanged.)
    """
    limits = limits if limits is not None else PdfLimits()
    payload = _check_envelope(data, limits)

    import pypdf  # lazy: see the module docstring

    try:
        return _extract(pypdf, payload, limits, require_text, progress)
    except PdfRejected:
        raise
    except Exception as exc:
        if _is_timeout(exc):
            raise
        raise _translate(exc, payload, limits) from exc


# --------------------------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------------------------

_LIGATURES: Final = {0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "st", 0xFB06: "st"}
# Whitespace other than space and newline; after translation only those two are left.
_OTHER_SPACES: Final = (0x09, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
_LINE_BREAKS: Final = (0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029)  # vertical tab, form feed, CR, NEL, separators
_INVISIBLE: Final = (0x200B, 0x2060, 0xFEFF)  # zero-width space, word joiner, byte-order mark


def _translation_table() -> dict[int, str | None]:
    table: dict[int, str | None] = dict.fromkeys((*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)))  # controls
    del table[0x0A]  # newline stays
    table.update(dict.fromkeys(range(0xD800, 0xE000)))  # lone surrogates cannot be encoded as UTF-8 downstream
    table.update(dict.fromkeys(_INVISIBLE))
    table.update(dict.fromkeys(_OTHER_SPACES, " "))
    table.update(dict.fromkeys(_LINE_BREAKS, "\n"))
    table.update(_LIGATURES)
    return table


_TRANSLATION: Final = _translation_table()
# Every character the translation changes, plus the soft hyphen; most pages hold none, and searching is faster
# than translating.
_NEEDS_TRANSLATION: Final = re.compile(
    "["
    + "".join(re.escape(chr(code)) for code in sorted({*_TRANSLATION, 0xAD}) if not 0xD800 <= code < 0xE000)
    + "\ud800-\udfff]"
)


def _ascii_tables() -> tuple[bytes, bytes]:
    """The ASCII part of the translation as a `bytes.translate` table and the bytes it deletes."""
    table, delete = bytearray(range(256)), bytearray()
    for code in range(128):
        if code in _TRANSLATION:
            replacement = _TRANSLATION[code]
            if replacement is None:
                delete.append(code)
            else:
                table[code] = ord(replacement)
    return bytes(table), bytes(delete)


_ASCII_TABLE, _ASCII_DELETE = _ascii_tables()
_SOFT_HYPHEN_BREAK: Final = re.compile(r"\u00ad *\n *")
_LINE_EDGE_SPACE: Final = re.compile(r" ?\n ?")
_BLANK_LINES: Final = re.compile(r"\n{3,}")
_HYPHEN_AT_LINE_END: Final = re.compile(r"[-\u2010]\n(?=[^\W\d_])")
_TRAILING_LETTERS: Final = re.compile(LETTERS.pattern + "$")


def _clean(text: str) -> str:
    """Drop control characters, unify line breaks, collapse spaces within lines, keep at most one blank line."""
    # Pages are cleaned on every ingestion, so the common cases take the fast paths: ASCII text goes through
    # bytes.translate, and substring tests skip substitutions that would change nothing.
    if text.isascii():
        text = text.replace("\r\n", "\n").encode("ascii").translate(_ASCII_TABLE, _ASCII_DELETE).decode("ascii")
    elif _NEEDS_TRANSLATION.search(text) is not None:
        text = text.replace("\r\n", "\n").translate(_TRANSLATION)
        if "\u00ad" in text:  # a soft hyphen at a line end marks a hyphenated word; elsewhere it is invisible
            text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\u00ad", "")
    while "  " in text:
        text = text.replace("  ", " ")
    if " \n" in text or "\n " in text:
        text = _LINE_EDGE_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip(" \n")


def _hyphen_sites(text: str) -> list[tuple[int, int, int]]:
    """(hyphen position, start of the next line's first word, its end) for each word hyphenated at a line end.

    `text` must be cleaned: its only whitespace characters are space and newline.
    """
    sites = []
    if "-\n" in text or "\u2010\n" in text:
        for match in _HYPHEN_AT_LINE_END.finditer(text):
            hyphen = match.start()
            right = LETTERS.match(text, match.end())
            if hyphen > 0 and text[hyphen - 1].isalpha() and right is not None:
                sites.append((hyphen, right.start(), right.end()))
    return sites


def _vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Lower-cased words and hyphenated compounds that occur unbroken somewhere in the (cleaned) document."""
    words: set[str] = set()
    for text in texts:
        pieces, position = [], 0
        for hyphen, _, right_end in _hyphen_sites(text):  # the fragments of broken words are not words
            left = _TRAILING_LETTERS.search(text, position, hyphen)
            pieces.append(text[position : left.start() if left else hyphen])
            position = right_end
        pieces.append(text[position:])
        for token in LETTER_WORD.findall(" ".join(pieces)):
            token = token.lower().replace("\u2010", "-")
            words.add(token)
            if "-" in token:
                words.update(token.split("-"))
    return frozenset(words)


def _join_hyphenated(text: str, vocabulary: frozenset[str]) -> str:
    """Join words hyphenated across a line break, keeping the hyphen of real compounds.

    Without a dictionary, "exam-\\nple" and "well-\\nknown" look alike, so the rest of the document decides:
    the hyphenated form seen unbroken keeps its hyphen, the joined form seen unbroken is joined, two fragments
    that are both words on their own ("well", "known") are a compound; anything else is a split word. A next
    line that starts with a capital or a digit ("Anglo-\\nSaxon", "COVID-\\n19") is left alone.
    """
    pieces, position = [], 0
    for hyphen, right_start, right_end in _hyphen_sites(text):
        right = text[right_start:right_end]
        if not right[0].islower():
            continue
        token_start = max(text.rfind(" ", 0, hyphen), text.rfind("\n", 0, hyphen)) + 1
        left_token = text[token_start:hyphen]
        left_match = _TRAILING_LETTERS.search(left_token)
        left = left_match.group(0).lower() if left_match else ""
        right_lower = right.lower()
        if "-" in left_token or "\u2010" in left_token or f"{left}-{right_lower}" in vocabulary:
            keep = True  # already a compound ("state-of-the-\nart") or seen hyphenated elsewhere
        elif left + right_lower in vocabulary:
            keep = False
        else:
            keep = left in vocabulary and right_lower in vocabulary
        pieces.append(text[position:hyphen])
        if keep:
            pieces.append(text[hyphen])
        position = right_start
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def normalize_text(text: str, vocabulary: frozenset[str] | None = None) -> str:
    """Normalise raw extracted text.

    Strips NUL and other control characters, expands ligatures, collapses runs of whitespace within lines,
    trims lines, keeps at most one blank line, and joins words hyphenated across line breaks. `vocabulary`
    (words seen in the whole document) guides the hyphen decision; by default the text's own words are used.
    """
    cleaned = _clean(text)
    if not _hyphen_sites(cleaned):
        return cleaned
    return _join_hyphenated(cleaned, vocabulary if vocabulary is not None else _vocabulary([cleaned]))


# --------------------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------------------

_ENCRYPTED_MESSAGE: Final = (
    "The PDF is password-protected. Remove the password (for example, print or export it to a new PDF "
    "without protection) and upload it again."
)
_CORRUPT_MESSAGE: Final = (
    "The PDF is damaged or incomplete and could not be read. It may have been cut off during upload: "
    "try exporting it again from the original document."
)
_NO_TEXT_MESSAGE: Final = (
    "The PDF contains no extractable text. It looks like a scanned document or a set of images; text "
    "recognition (OCR) is not supported, so please upload a PDF with selectable text."
)


def _size(nbytes: int) -> str:
    return f"{nbytes / MB:g} MB" if nbytes >= MB else f"{nbytes:,} bytes"


def _check_envelope(data: bytes | bytearray | memoryview, limits: PdfLimits) -> bytes:
    """Cheap checks that need no PDF parser; returns the file as bytes."""
    size = memoryview(data).nbytes  # before copying anything
    if size == 0:
        raise PdfRejected("empty", "The file is empty.")
    if size > limits.max_bytes:
        raise PdfRejected(
            "too_large", f"The file is {_size(size)}, over the limit of {_size(limits.max_bytes)} per PDF."
        )
    payload = bytes(data)
    if PDF_MAGIC not in payload[:MAGIC_SEARCH_BYTES]:
        raise PdfRejected("not_pdf", "The file is not a PDF. Please upload the lecture material as a PDF file.")
    if payload.rfind(b"%%EOF") == -1:
        # Every complete PDF ends with an end-of-file marker; without one the upload was cut short.
        raise PdfRejected("corrupt", _CORRUPT_MESSAGE)
    return payload


def _pypdf_limits(pypdf: ModuleType, limits: PdfLimits, per_stream: int) -> AbstractContextManager[Any]:
    """pypdf's limits for the current context only (pypdf >= 7 keeps its configuration in a ContextVar)."""
    apply_configuration = getattr(pypdf, "apply_configuration", None)
    configuration = getattr(pypdf, "Configuration", None)
    if apply_configuration is None or configuration is None:
        # Older pypdf: its built-in defaults (75 MB per stream) stay in force; our running totals still apply.
        return nullcontext()
    per_stream = max(1, per_stream)  # 0 would mean "unlimited" to pypdf
    wanted: dict[str, Any] = {
        "maximum_declared_stream_length": limits.max_bytes,
        "zlib_maximum_output_length": per_stream,
        "lzw_maximum_output_length": per_stream,
        "run_length_maximum_output_length": per_stream,
        "brotli_maximum_output_length": per_stream,
        "jbig2_maximum_output_length": per_stream,
        "array_based_stream_maximum_output_length": per_stream,
        "image_maximum_buffer_size": per_stream,
        # Work summed over a stream's filter chain: the raw bytes plus each intermediate output.
        "stream_decoding_work_maximum_length": limits.max_bytes + 2 * per_stream,
        "stream_parsing_work_maximum_count": limits.max_operations_per_page,
        # Never run an external decoder binary on untrusted input (text extraction does not need it).
        "jbig2dec_binary": None,
    }
    return apply_configuration(**{name: value for name, value in wanted.items() if hasattr(configuration, name)})


def _extract(
    pypdf: ModuleType,
    data: bytes,
    limits: PdfLimits,
    require_text: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractedPdf:
    with _pypdf_limits(pypdf, limits, min(limits.max_stream_bytes, limits.max_decompressed_bytes)):
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise PdfRejected("encrypted", _ENCRYPTED_MESSAGE)
        page_count = len(reader.pages)
        if page_count == 0:
            raise PdfRejected("no_text", "The PDF has no pages.")
        if page_count > limits.max_pages:
            raise PdfRejected(
                "too_many_pages",
                f"The PDF has {page_count:,} pages; the limit is {limits.max_pages:,} pages per PDF. "
                "Split it into smaller files and upload them separately.",
            )
        raw_pages = []
        for text in _raw_page_texts(pypdf, reader, page_count, limits):
            raw_pages.append(text)
            if progress is not None:
                progress(len(raw_pages), page_count)
        title = _metadata_title(reader)

    cleaned = [_clean(text) for text in raw_pages]
    if require_text and not any(ANY_LETTER.search(text) for text in cleaned):
        raise PdfRejected("no_text", _NO_TEXT_MESSAGE)
    if any(_hyphen_sites(text) for text in cleaned):
        vocabulary = _vocabulary(cleaned)
        cleaned = [_join_hyphenated(text, vocabulary) for text in cleaned]
    pages = [PageText(number=number, text=text) for number, text in enumerate(cleaned, start=1)]
    return ExtractedPdf(pages=pages, page_count=page_count, title=title)


def _raw_page_texts(pypdf: ModuleType, reader: Any, page_count: int, limits: PdfLimits) -> Iterator[str]:
    decompressed = 0
    chars = 0
    counted: set[int] = set()  # the streams already in `decompressed`; pypdf keeps them alive with the reader
    for index in range(page_count):
        remaining = limits.max_decompressed_bytes - decompressed
        try:
            # No stream may decompress past what is left of the document's budget.
            with _pypdf_limits(pypdf, limits, min(limits.max_stream_bytes, remaining)):
                page = reader.pages[index]
                text = page.extract_text()
                decompressed += _newly_decompressed_bytes(page, counted)
        except pypdf.errors.LimitReachedError as exc:
            if remaining < limits.max_stream_bytes:
                raise _total_too_large(limits) from exc
            raise
        if decompressed > limits.max_decompressed_bytes:
            raise _total_too_large(limits)
        if not isinstance(text, str):
            text = ""
        if len(text) > limits.max_chars_per_page:
            raise PdfRejected(
                "too_large",
                f"Page {index + 1} holds more than {limits.max_chars_per_page:,} characters of text, more than a "
                "real page can; the file looks damaged or deliberately inflated.",
            )
        chars += len(text)
        if chars > limits.max_total_chars:
            raise PdfRejected(
                "too_large",
                f"The PDF holds more than {limits.max_total_chars:,} characters of text, over the limit per PDF. "
                "Split it into smaller files and upload them separately.",
            )
        yield text


def _total_too_large(limits: PdfLimits) -> PdfRejected:
    return PdfRejected(
        "too_large",
        f"The PDF expands to more than {_size(limits.max_decompressed_bytes)} of content when decompressed, over "
        "the processing limit. It may be a decompression bomb.",
    )


# The dictionary entries that lead from a page to the streams text extraction decodes.
_ACCOUNTED_KEYS: Final = frozenset(
    {
        "/Contents",
        "/Resources",
        "/Font",
        "/XObject",
        "/ToUnicode",
        "/Encoding",
        "/DescendantFonts",
        "/FontDescriptor",
        "/FontFile",
        "/FontFile2",
        "/FontFile3",
        "/CharProcs",
    }
)
_NAME_MAPS: Final = frozenset({"/Font", "/XObject", "/CharProcs"})  # every value of these is followed
_MAX_ACCOUNTING_NODES: Final = 10_000


def _newly_decompressed_bytes(page: Any, counted: set[int]) -> int:
    """Decompressed bytes that pypdf holds for streams reachable from `page` and not counted before.

    pypdf keeps a decoded copy of every stream it decodes (`decoded_self`), so this measures both the work
    done and the memory held. A stream shared by several pages is counted once per document (`counted`);
    shared dictionaries are walked again for each page, since a font may first be decoded on a later page.
    """
    total = 0
    stack: list[tuple[Any, bool]] = [(page, False)]
    visited: set[int] = set()
    while stack and len(visited) < _MAX_ACCOUNTING_NODES:
        node, follow_all = stack.pop()
        try:
            node = node.get_object() if hasattr(node, "get_object") else node
        except Exception:  # noqa: BLE001, S112 - an unresolvable reference holds no decoded data to count
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        decoded = getattr(node, "decoded_self", None)
        if decoded is not None and id(node) not in counted:
            counted.add(id(node))
            total += len(decoded.get_data())
        if isinstance(node, dict):
            for key, value in node.items():
                if follow_all or key in _ACCOUNTED_KEYS:
                    stack.append((value, key in _NAME_MAPS and not follow_all))
        elif isinstance(node, list):
            stack.extend((item, False) for item in node)
    return total


_TITLE_PREFIX: Final = re.compile(r"^(?:microsoft\s+(?:word|powerpoint|excel)\s*-\s*)", re.IGNORECASE)
_TITLE_FILE_SUFFIX: Final = re.compile(r"\.(?:docx?|pptx?|odt|odp|rtf|tex|dvi|pdf|key|pages)$", re.IGNORECASE)
_BARE_FILE_NAME: Final = re.compile(r"[\w.~-]+\.\w{2,5}")
_PLACEHOLDER_TITLES: Final = frozenset(
    {
        "untitled",
        "untitled document",
        "title",
        "document",
        "presentation",
        "powerpoint presentation",
        "slide 1",
        "pdf",
        "unknown",
        "none",
        "null",
        "no title",
        "blank",
        "new document",
    }
)
MAX_TITLE_CHARS: Final = 300


def _metadata_title(reader: Any) -> str | None:
    try:
        metadata = reader.metadata
        raw = metadata.title if metadata is not None else None
    except Exception:  # noqa: BLE001 - unreadable metadata must not fail an otherwise good PDF
        return None
    return _sensible_title(raw)


def _sensible_title(raw: object) -> str | None:
    """`raw` cleaned up if it looks like a real document title, else None."""
    if not isinstance(raw, str):
        return None
    title = " ".join(_clean(raw).split())
    title = _TITLE_FILE_SUFFIX.sub("", _TITLE_PREFIX.sub("", title)).strip(" -_")
    if not title or len(title) > MAX_TITLE_CHARS or ANY_LETTER.search(title) is None:
        return None
    if title.lower() in _PLACEHOLDER_TITLES or "\\" in title or _BARE_FILE_NAME.fullmatch(title):
        return None
    return title


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------


def _is_timeout(exc: BaseException) -> bool:
    """Timeouts injected by the job layer (TimeoutError, RQ's JobTimeoutException) are not about the PDF."""
    return isinstance(exc, TimeoutError) or any(cls.__name__.endswith("TimeoutException") for cls in type(exc).__mro__)


def _translate(exc: Exception, data: bytes, limits: PdfLimits) -> PdfRejected:
    from pypdf import errors

    if isinstance(exc, errors.FileNotDecryptedError) or (
        isinstance(exc, errors.DependencyError) and b"/Encrypt" in data
    ):
        return PdfRejected("encrypted", _ENCRYPTED_MESSAGE)
    if isinstance(exc, (errors.LimitReachedError, MemoryError)):
        per_stream = _size(min(limits.max_stream_bytes, limits.max_decompressed_bytes))
        return PdfRejected(
            "too_large",
            "The PDF is too large or too complex to process safely: it exceeds a processing limit (for example, "
            f"a part that decompresses to more than {per_stream}). It may be a decompression bomb.",
        )
    return PdfRejected("corrupt", _CORRUPT_MESSAGE)
