"""One text engine for every reader of words: PDF cleanup, chunking, lexical search, the offline provider,
grading and the tutor's grounding gate.

Pure functions with no platform or domain imports. Unicode-aware throughout: a word is a run of letters and
digits of any script ("Schrödinger", "ψ", "энергия"), joined by inner apostrophes or hyphens ("don't",
"x-ray", "état-major"). Stemming is Snowball English (`snowballstemmer`, BSD-3, pure Python; imported on first
use). Sentences: a period, question or exclamation mark or an ellipsis, maybe followed by a closing quote or
bracket, ends a sentence when the next word does not start in lower case and the word before it is not a
known abbreviation (`e.g.`, `Fig.`) or an initial (`H. M.`). Headings: short title-case or numbered lines that
stand on their own (`is_heading`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "ABBREVIATIONS",
    "ANY_LETTER",
    "CLOSERS",
    "LETTERS",
    "LETTER_WORD",
    "MAX_TERM_CHARS",
    "REAL_TEXT",
    "SEARCH_STOPWORDS",
    "SENTENCE_MARKS",
    "STOPWORDS",
    "TOKEN",
    "WORD",
    "contains_term",
    "context_text",
    "ends_sentence",
    "fold",
    "heading_at",
    "is_heading",
    "normalize_space",
    "split_sentences",
    "stable_hash",
    "stem",
    "terms",
    "tokens",
]


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# --- word shapes -----------------------------------------------------------------------------------
#: A token: letters and digits of any script, joined by inner apostrophes or hyphens.
TOKEN: Final = re.compile(r"[^\W_]+(?:['\u2019\-\u2010][^\W_]+)*")
#: A word: a token that starts with a letter.
WORD: Final = re.compile(r"[^\W\d_][^\W_]*(?:['\u2019\-\u2010][^\W_]+)*")
#: Letters only (no digits), joined by inner hyphens: what PDF cleanup treats as a word when it mends hyphenation.
LETTER_WORD: Final = re.compile(r"[^\W\d_]+(?:[-\u2010][^\W\d_]+)*")
LETTERS: Final = re.compile(r"[^\W\d_]+")
ANY_LETTER: Final = re.compile(r"[^\W\d_]")
#: A letter or a digit: text that holds one says something.
REAL_TEXT: Final = re.compile(r"[^\W_]")
_SPACE: Final = re.compile(r"\s+")
MAX_TERM_CHARS: Final = 40

#: English function words and fillers (the offline provider's and grading's list).
STOPWORDS: Final[frozenset[str]] = _wordset("""
a about above across after again against all almost along already also although always am among an and another
any anybody anyone anything are aren't around as at be became because become becomes been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't done down
during each either else enough etc even ever every few for from further get gets getting give given gives
go goes going got had hadn't has hasn't have haven't having he her here hers herself him himself his how
however i i'd i'll i'm i've if in inside into is isn't it it's its itself just least less let like made make makes
many may me might mine more most much must my myself neither never no nobody none nor not nothing now of
off often on once one only onto or other others otherwise our ours ourselves out outside over own per perhaps
quite rather really same several shall she should shouldn't since so some something sometimes somewhat
still such than that that's the their theirs them themselves then there there's therefore these they
they're this those though through thus to too toward towards under until up upon us use used uses using
usually very via was wasn't we we're were weren't what what's whatever when whenever where whereas
wherever whether which while who whom whose why will with within without won't would wouldn't yet you
you're your yours yourself yourselves
""")
#: Short English function words dropped from lexical search (they carry no topic; a short list keeps words like
#: "not", "first" or "before", which tell options and steps apart, searchable).
SEARCH_STOPWORDS: Final[frozenset[str]] = _wordset("""
a an and are as at be been but by can do does for from had has have how i if in into is it its of on or
our so such than that the their them then there these they this to was we were what when where which who
why will with would you your
""")


def normalize_space(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def fold(text: str) -> str:
    """NFKC and case folding: the form words are compared in ("Ｆｉｌｅ" and "file", "Straße" and "strasse")."""
    return unicodedata.normalize("NFKC", text).casefold()


def stable_hash(*parts: str) -> int:
    """A process-independent hash (Python's `hash` of a str changes per process)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


# --- tokens and terms ------------------------------------------------------------------------------
def tokens(text: str) -> list[str]:
    """Folded word tokens in order (hyphenated words stay whole, apostrophes are ASCII)."""
    return [token.replace("\u2019", "'").replace("\u2010", "-") for token in TOKEN.findall(fold(text))]


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball English stem of a word (folded, possessive `'s` dropped): `neurons` meets `neuron`,
    `charged` meets `charge`. Stems need only agree with each other, not be words."""
    word = fold(word).replace("\u2019", "'").removesuffix("'s")
    return str(_stemmer().stemWord(word)) if word else word


def terms(text: str, *, drop: frozenset[str] = STOPWORDS, compounds: bool = True) -> list[str]:
    """Stemmed content terms in order: tokens minus `drop`; a hyphenated word yields its parts, and itself
    too when `compounds` (the offline ranking wants "x-ray" whole, the search index only its parts)."""
    out: list[str] = []
    for token in tokens(text):
        if "-" not in token:
            if token not in drop and len(token) <= MAX_TERM_CHARS:
                out.append(stem(token))
            continue
        if compounds and token not in drop and len(token) <= MAX_TERM_CHARS:
            out.append(stem(token))
        out.extend(stem(part) for part in token.split("-") if part and part not in drop and len(part) <= MAX_TERM_CHARS)
    return out


def contains_term(text: str, term: str) -> bool:
    """Whether `term` occurs in `text` as whole words, ignoring case and spacing."""
    words = [re.escape(word) for word in normalize_space(term).split(" ") if word]
    if not words:
        return False
    pattern = r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


# --- sentences -------------------------------------------------------------------------------------
#: Characters that end a sentence, and those that may follow them before the space (closing quotes, brackets).
SENTENCE_MARKS: Final = ".!?\u2026"
CLOSERS: Final = "\"')]}\u2019\u201d\u00bb"
#: Abbreviations that end with a period without ending a sentence.
ABBREVIATIONS: Final[frozenset[str]] = _wordset(
    "e.g i.e etc vs cf al fig figs eq eqs no dr mr mrs ms prof st approx ca resp sec ch vol pp p"
)
_INITIALS: Final = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
_BULLET_LINE: Final = re.compile(r"\n[ \t]*(?:[•▪◦‣●○■□*]|[-–—]\s|\d{1,2}[.)]\s)")
_BULLET_START: Final = re.compile(r"^(?:[•▪◦‣●○■□*]|[-–—](?=\s)|\d{1,2}[.)](?=\s))\s*")
_PARAGRAPH: Final = re.compile(r"\n[ \t]*\n")
_HYPHENATED_BREAK: Final = re.compile(r"(\w)-\n(\w)")
#: A candidate sentence end; it ends one only when `next` (the following letter or digit) is upper case or a digit.
_SENTENCE_END: Final = re.compile(rf"[{SENTENCE_MARKS}]+[{re.escape(CLOSERS)}]*\s+(?=[\"'“‘(\[]?(?P<next>[^\W_]))")


def ends_sentence(before: str, following: str) -> bool:
    """Whether the sentence mark that ends `before` ends a sentence, given the text `following` it.

    Not when the next character is a lower-case letter ("3 p.m. and"; a quoted command, "'diff' compares",
    may start a sentence), nor after an abbreviation or an initial ("e.g. Broca", "H. M. had", "Fig. 3").
    """
    if following[:1].islower():
        return False
    stripped = before.rstrip(CLOSERS)
    if not stripped.endswith("."):
        return True
    last_word = stripped[:-1].rsplit(None, 1)[-1].lower().lstrip("(\"'“‘") if stripped[:-1].strip() else ""
    return not (last_word in ABBREVIATIONS or _INITIALS.fullmatch(last_word))


def split_sentences(text: str) -> list[str]:
    """Sentences of extracted text: line-wrapped prose is joined, paragraphs, headings and bullets split."""
    text = _HYPHENATED_BREAK.sub(r"\1-\2", text.replace("\r\n", "\n").replace("\r", "\n"))
    blocks = _PARAGRAPH.split(_mark_headings(text))
    sentences: list[str] = []
    for block in blocks:
        for piece in _BULLET_LINE.split("\n" + block):
            piece = _BULLET_START.sub("", normalize_space(piece))
            if piece:
                sentences.extend(_split_prose(piece))
    return [sentence for sentence in sentences if TOKEN.search(sentence)]


def _mark_headings(text: str) -> str:
    """Put a paragraph break after heading-like lines, which PDF extraction runs into the next sentence."""
    lines = text.split("\n")
    out: list[str] = []
    for index, line in enumerate(lines):
        out.append(line)
        following = lines[index + 1].lstrip() if index + 1 < len(lines) else ""
        if following[:1].isupper() and is_heading(line.strip()):
            out.append("")
    return "\n".join(out)


def _split_prose(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        following = match.group("next")
        if not (following.isupper() or following.isdigit()):
            continue
        if not ends_sentence(text[start : match.end()].rstrip(), text[match.end() :]):
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


# --- headings --------------------------------------------------------------------------------------
_NUMBERED: Final = re.compile(r"^(?:(?:\d+|[A-Z])(?:\.\d+)*\.?|chapter \d+|section \d+)\s+\S", re.IGNORECASE)
_UNDERLINE: Final = re.compile(r"^[=*\-~^#_]{3,}$")


def is_heading(line: str) -> bool:
    """Whether one line of text looks like a heading: at most 10 words and 80 characters, no clause or sentence
    punctuation at its end (a question mark is fine), and every content word capitalised or a number."""
    if not line or line[-1] in ".!;,-:" or len(line) > 80:
        return False
    words = line.split()
    if len(words) > 10:
        return False
    content = [word for word in words if word.lower() not in STOPWORDS]
    return (
        bool(content)
        and ANY_LETTER.search(line) is not None
        and all(word[:1].isupper() or word[:1].isdigit() for word in content)
    )


def heading_at(lines: list[str], index: int) -> bool:
    """Whether `lines[index]` is a heading in its context: a numbered or underlined line, or a heading-like
    line (`is_heading`) that stands on its own (the line before ends a sentence or is blank, and the next
    one does not go on in lower case)."""
    line = lines[index].strip()
    if not line or _UNDERLINE.match(line):
        return False
    following = lines[index + 1].strip() if index + 1 < len(lines) else ""
    if _UNDERLINE.match(following) and ANY_LETTER.search(line) and len(line) <= 80:
        return True
    previous = lines[index - 1].strip() if index > 0 else ""
    stands_alone = not previous or previous[-1] in SENTENCE_MARKS + CLOSERS + ":"
    if not stands_alone or following[:1].islower():
        return False
    numbered = _NUMBERED.match(line) is not None and len(line) <= 80 and line[-1] not in ".;,"
    return numbered or is_heading(line)


def context_text(title: str | None, section: str | None) -> str:
    """A chunk's context as indexed next to its text: the document's title and the section heading it falls
    under, one line ("GNU bzip2 manual: 2.4 Options"); the section alone when it repeats the title."""
    title, section = normalize_space(title or ""), normalize_space(section or "")
    if not section or fold(section) == fold(title):
        return title
    if not title or fold(title) in fold(section):
        return section
    return f"{title}: {section}"
