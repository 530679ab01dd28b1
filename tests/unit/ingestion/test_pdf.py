"""PDF extraction: good files give page-numbered text, every bad file gives a PdfRejected with a stable code."""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiteacher.ingestion.chunking import chunk_pages
from aiteacher.ingestion.pdf import ExtractedPdf, PdfLimits, PdfRejected, extract_pages, normalize_text

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "pdfs"
EVAL_DIR = REPO_ROOT.parent / "shared" / "eval"
EVAL_PAGES = {
    "psychology-biopsychology-nervous-system.pdf": 12,
    "philosophy-epistemology.pdf": 14,
    "political-science-legislatures.pdf": 13,
}
MAX_FIXTURE_BYTES = 100 * 1024


def load_generator() -> ModuleType:
    """tests/fixtures/make_pdfs.py is a script, not a package module: load it by path (once)."""
    name = "aiteacher_fixtures_make_pdfs"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "fixtures" / "make_pdfs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


make_pdfs = load_generator()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def assert_readable(message: str) -> None:
    """A message meant for the academic who uploaded the file: a sentence, no internals."""
    assert 10 < len(message) < 400
    assert message[0].isupper() and message.rstrip().endswith(".")
    for internal in ("Error", "Traceback", "pypdf", "Exception", "0x", "None"):
        assert internal not in message


def collapse(text: str) -> str:
    return " ".join(text.split()).lower()


# --------------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "phrase"),
    [
        ("empty.pdf", "empty", "empty"),
        ("not_a_pdf.pdf", "not_pdf", "not a pdf"),
        ("truncated.pdf", "corrupt", "damaged or incomplete"),
        ("encrypted.pdf", "encrypted", "the pdf is password-protected"),
        ("encrypted_empty_password.pdf", "encrypted", "the pdf is password-protected"),
        ("bomb.pdf", "too_large", "decompress"),
        ("scanned.pdf", "no_text", "ocr"),
    ],
)
def test_bad_fixture_is_rejected_with_code_and_readable_message(name: str, code: str, phrase: str) -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture(name), PdfLimits())
    assert caught.value.code == code
    assert caught.value.message == str(caught.value)
    assert phrase in caught.value.message.lower()
    assert_readable(caught.value.message)


def test_too_many_pages_names_the_limit() -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("many_pages.pdf"), PdfLimits(max_pages=10))
    assert caught.value.code == "too_many_pages"
    assert "12 pages" in caught.value.message and "limit is 10 pages" in caught.value.message
    assert_readable(caught.value.message)
    assert extract_pages(fixture("many_pages.pdf"), PdfLimits(max_pages=12)).page_count == 12


def test_bomb_is_stopped_by_a_low_stream_limit_quickly() -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("bomb.pdf"), PdfLimits(max_stream_bytes=1024 * 1024))
    assert caught.value.code == "too_large"
    assert "1 MB" in caught.value.message


def test_file_over_the_size_limit_is_rejected_before_parsing() -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("good.pdf"), PdfLimits(max_bytes=1000))
    assert caught.value.code == "too_large"
    assert "1,000 bytes" in caught.value.message


def test_whole_document_decompression_budget() -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("good.pdf"), PdfLimits(max_decompressed_bytes=1200))
    assert caught.value.code == "too_large"
    assert "decompressed" in caught.value.message
    assert_readable(caught.value.message)


def test_text_limits() -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("good.pdf"), PdfLimits(max_chars_per_page=500))
    assert caught.value.code == "too_large" and "Page 2" in caught.value.message
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("good.pdf"), PdfLimits(max_total_chars=1000))
    assert caught.value.code == "too_large" and "1,000 characters" in caught.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n%%EOF\n",
        b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\n%%EOF\n",
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
    ],
    ids=["header-only", "garbage", "dangling-pages"],
)
def test_garbage_after_a_pdf_header_is_corrupt(data: bytes) -> None:
    with pytest.raises(PdfRejected) as caught:
        extract_pages(data)
    assert caught.value.code == "corrupt"
    assert_readable(caught.value.message)


def test_pdf_without_pages_has_no_text() -> None:
    builder = make_pdfs.PdfBuilder()
    pages = builder.add(b"<< /Type /Pages /Kids [] /Count 0 >>")
    catalog = builder.add(f"<< /Type /Catalog /Pages {pages} 0 R >>".encode())
    with pytest.raises(PdfRejected) as caught:
        extract_pages(builder.build(catalog))
    assert caught.value.code == "no_text"
    assert caught.value.message == "The PDF has no pages."


def test_truncated_file_with_an_end_marker_is_still_corrupt() -> None:
    good = fixture("good.pdf")
    with pytest.raises(PdfRejected) as caught:
        extract_pages(good[: len(good) // 2] + b"\n%%EOF\n")
    assert caught.value.code == "corrupt"


def test_pdf_magic_must_be_in_the_first_kilobyte() -> None:
    good = fixture("good.pdf")
    assert extract_pages(b" " * 100 + good).page_count == 3
    with pytest.raises(PdfRejected) as caught:
        extract_pages(b" " * 1024 + good)
    assert caught.value.code == "not_pdf"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
)
def test_mutated_pdfs_never_raise_anything_but_pdf_rejected(edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(fixture("good.pdf"))
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        result = extract_pages(bytes(data), PdfLimits(max_stream_bytes=1024 * 1024))
    except PdfRejected as rejected:
        assert rejected.code in {"empty", "not_pdf", "corrupt", "encrypted", "too_many_pages", "too_large", "no_text"}
        assert_readable(rejected.message)
    else:
        assert result.page_count == len(result.pages)
        assert [page.number for page in result.pages] == list(range(1, result.page_count + 1))


class JobTimeoutException(Exception):  # same name as RQ's timeout exception
    pass


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (KeyError("/Root"), "corrupt"),
        (RecursionError(), "corrupt"),
        (ValueError("x"), "corrupt"),
        (MemoryError(), "too_large"),
        (AssertionError(), "corrupt"),
    ],
)
def test_unexpected_parser_errors_become_pdf_rejected(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, code: str
) -> None:
    import pypdf

    def explode(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(pypdf, "PdfReader", explode)
    with pytest.raises(PdfRejected) as caught:
        extract_pages(fixture("good.pdf"))
    assert caught.value.code == code
    assert caught.value.__cause__ is raised


@pytest.mark.parametrize("raised", [TimeoutError("job timeout"), JobTimeoutException("job timeout")])
def test_job_timeouts_pass_through(monkeypatch: pytest.MonkeyPatch, raised: Exception) -> None:
    import pypdf

    def explode(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(pypdf, "PdfReader", explode)
    with pytest.raises(type(raised)):
        extract_pages(fixture("good.pdf"))


def test_pdf_rejected_pickles_and_prints() -> None:
    error = PdfRejected("encrypted", "The PDF is password-protected.")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.code, copy.message, str(copy)) == ("encrypted", "The PDF is password-protected.", error.message)
    assert "encrypted" in repr(error)


@pytest.mark.parametrize("field", ["max_bytes", "max_pages", "max_decompressed_bytes", "max_chars_per_page"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_limits_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PdfLimits(**{field: value})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Good input
# --------------------------------------------------------------------------------------------------------------


def test_good_fixture_pages_text_and_title() -> None:
    result = extract_pages(fixture("good.pdf"), PdfLimits())
    assert isinstance(result, ExtractedPdf)
    assert result.page_count == 3
    assert [page.number for page in result.pages] == [1, 2, 3]
    assert result.title == "Introduction to Thermodynamics"
    first, second, third = (page.text for page in result.pages)
    assert first.startswith("Lecture 1: Introduction to Thermodynamics\n")
    assert "an example of a conservation law" in first  # "exam-\nple" joined
    assert "This is a well-known idea" in first  # "well-\nknown" kept: "well-known" occurs elsewhere
    assert "Heat and work are both ways" in first  # runs of spaces collapsed
    assert "Carnot engine" in second and "Carnot" not in first + third
    assert "Boltzmann\nlinked entropy" in second  # line structure kept
    assert third == "Summary\nEnergy is conserved; entropy of an isolated system does not decrease."


def test_accepts_bytearray_and_memoryview() -> None:
    data = fixture("good.pdf")
    expected = extract_pages(data)
    assert extract_pages(bytearray(data)) == expected
    assert extract_pages(memoryview(data)) == expected


def test_injection_text_is_extracted_verbatim_on_its_page() -> None:
    """Extraction never filters content: the prompt layer must treat this text as data, with its page."""
    result = extract_pages(fixture("injection.pdf"))
    assert make_pdfs.INJECTION_SENTENCE in result.pages[0].text
    assert "Photosynthesis converts light energy" in result.pages[0].text
    assert make_pdfs.INJECTION_SENTENCE not in result.pages[1].text
    holding = [chunk for chunk in chunk_pages(result.pages) if make_pdfs.INJECTION_SENTENCE in chunk.text]
    assert holding and {chunk.page for chunk in holding} == {1}


def test_pages_without_text_are_kept_with_empty_text() -> None:
    data = make_pdfs.text_pdf([["Only the first page has text."], [], ["And the third."]])
    result = extract_pages(data)
    assert [(page.number, page.text) for page in result.pages] == [
        (1, "Only the first page has text."),
        (2, ""),
        (3, "And the third."),
    ]
    assert result.title is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Introduction to Thermodynamics", "Introduction to Thermodynamics"),
        ("  Week 3:\tGraph   Algorithms ", "Week 3: Graph Algorithms"),
        ("Microsoft Word - Lecture 5 Sorting.docx", "Lecture 5 Sorting"),
        ("untitled", None),
        ("lecture-05.pdf", "lecture-05"),
        ("C:\\Users\\me\\notes.doc", None),
        ("12345", None),
        ("x" * 400, None),
    ],
)
def test_title_only_when_sensible(raw: str, expected: str | None) -> None:
    assert extract_pages(make_pdfs.text_pdf([["Some text."]], title=raw)).title == expected


def test_limits_are_per_call_and_per_thread() -> None:
    """pypdf's limits live in a ContextVar: a strict call in one thread never affects another thread."""
    import pypdf

    before = pypdf.get_configuration()
    good = fixture("good.pdf")
    barrier = threading.Barrier(8)

    def run(strict: bool) -> str:
        barrier.wait()
        outcomes = set()
        for _ in range(10):
            try:
                extract_pages(good, PdfLimits(max_stream_bytes=50) if strict else PdfLimits())
                outcomes.add("ok")
            except PdfRejected as rejected:
                outcomes.add(rejected.code)
        assert len(outcomes) == 1
        return outcomes.pop()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, [True, False] * 4))
    assert results == ["too_large", "ok"] * 4
    assert pypdf.get_configuration() is before


def test_module_import_does_not_import_pypdf() -> None:
    code = (
        "import sys, aiteacher.ingestion.pdf, aiteacher.ingestion.chunking; "
        "sys.exit(1 if 'pypdf' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\x00b\x07c\x1bd\x7fe\x9ff", "abcdef"),
        ("one  \t two\u00a0\u2003three", "one two three"),
        ("line one  \r\n   line two\rline three", "line one\nline two\nline three"),
        ("\n\n\n first \n\n\n\n second \n\n", "first\n\nsecond"),
        ("\ufb01nd the \ufb02ow", "find the flow"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("lone \ud800surrogate", "lone surrogate"),
        ("soft\u00adhyphen and exam\u00ad\nple", "softhyphen and example"),
        ("an exam-\nple here", "an example here"),
        ("a well-known fact and a well-\nknown fact", "a well-known fact and a well-known fact"),
        ("some tests read exam-\nple while others say example", "some tests read example while others say example"),
        ("the cat-\ndog both words: cat and dog", "the cat-dog both words: cat and dog"),
        ("state-of-the-\nart methods", "state-of-the-art methods"),
        ("Anglo-\nSaxon", "Anglo-\nSaxon"),
        ("COVID-\n19", "COVID-\n19"),
        ("trailing dash -\nnext", "trailing dash -\nnext"),
        ("infor-\nmation", "information"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_dehyphenation_uses_the_whole_document() -> None:
    """A compound seen on another page keeps its hyphen at a line break."""
    data = make_pdfs.text_pdf([["Decision trees are a rule-based method."], ["We compare two rule-", "based models."]])
    assert "two rule-based models." in extract_pages(data).pages[1].text


# --------------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------------


def test_fixtures_are_small_and_reproducible() -> None:
    built = make_pdfs.build_all()
    on_disk = {path.name for path in FIXTURES.glob("*.pdf")}
    assert on_disk == set(built)
    for name, data in built.items():
        assert len(data) < MAX_FIXTURE_BYTES, name
        assert (FIXTURES / name).read_bytes() == data, f"{name} differs: run tests/fixtures/make_pdfs.py"


# --------------------------------------------------------------------------------------------------------------
# The evaluation corpus (/work/shared/eval, next to the repository)
# --------------------------------------------------------------------------------------------------------------

needs_eval = pytest.mark.skipif(not (EVAL_DIR / "questions.json").is_file(), reason=f"{EVAL_DIR} is absent")


def eval_questions() -> list[dict[str, object]]:
    path = EVAL_DIR / "questions.json"
    return json.loads(path.read_text()) if path.is_file() else []


_extracted: dict[str, ExtractedPdf] = {}


def extracted(name: str) -> ExtractedPdf:
    if name not in _extracted:
        _extracted[name] = extract_pages((EVAL_DIR / name).read_bytes())
    return _extracted[name]


@needs_eval
@pytest.mark.parametrize(("name", "pages"), sorted(EVAL_PAGES.items()))
def test_eval_pdfs_page_counts_and_titles(name: str, pages: int) -> None:
    result = extracted(name)
    assert result.page_count == pages == len(result.pages)
    assert result.title and re.search(r"[A-Za-z]{4}", result.title)
    assert all(page.text for page in result.pages)
    footer = re.compile(rf"\| Page (\d+) of {pages}")
    for page in result.pages:  # every page's footer ("Title | Page N of M") is on page N
        assert [int(number) for number in footer.findall(page.text)] == [page.number]


@needs_eval
@pytest.mark.parametrize(
    "question", eval_questions(), ids=lambda q: f"{q['pdf']}:{q['page']}" if isinstance(q, dict) else "q"
)
def test_eval_answer_keywords_sit_on_their_stated_page(question: dict[str, object]) -> None:
    result = extracted(str(question["pdf"]))
    page = result.pages[int(str(question["page"])) - 1]
    assert page.number == question["page"]
    for keyword in question["answer_keywords"]:  # type: ignore[attr-defined]
        assert collapse(keyword) in collapse(page.text), keyword


@needs_eval
def test_eval_canary_phrases_sit_on_their_pages() -> None:
    phrases = json.loads((EVAL_DIR / "canary.json").read_text())
    phrases = phrases.get("phrases", phrases) if isinstance(phrases, dict) else phrases
    result = extract_pages((EVAL_DIR / "canary.pdf").read_bytes())
    for number, phrase in enumerate(phrases, start=1):
        assert collapse(phrase) in collapse(result.pages[number - 1].text)
