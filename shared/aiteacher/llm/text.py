"""Text tools behind the offline provider and the exam job: BM25 ranking of sentences, key-term extraction
and near-duplicate detection, over the words, stems and sentences of `aiteacher.text`.

Everything here is deterministic (no randomness, no dict-order surprises).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aiteacher.text import (
    STOPWORDS,
    WORD,
    split_sentences,
    stem,
    terms,
    tokens,
)

__all__ = [
    "QUESTION_WORDS",
    "RankedSentence",
    "bm25_rank",
    "extract_key_terms",
    "jaccard",
    "near_duplicate",
]


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: Words that carry no topic in a student's question or an exam prompt.
QUESTION_WORDS: Final[frozenset[str]] = _wordset("""
actually answer answers ask asked called case describe described difference different does example
examples explain explained explanation happen happens help know known mean meaning means people please
question questions say says tell think thought true understand way work works
""")

#: Verbs and fillers that end a candidate key phrase (a cheap stand-in for part-of-speech tagging).
_PHRASE_BREAKERS: Final[frozenset[str]] = (
    STOPWORDS
    | QUESTION_WORDS
    | _wordset("""
able according allow allows became becoming begin begins began call called calls carry carries cause
caused causes contain contains contained create created creates define defined defines depend depends
describe describes develop developed develops due find found first follow following follows help helps
include included includes including involve involved involves keep keeps lead leads led look looks main
mean means new occur occurs often play plays produce produced produces provide provides refer referred
refers related result results second see seen seems show shows shown take takes third took turn turns
various whose within appear appears bind binds exist exists fit fits move moves reach reaches receive
receives remain remains send sends travel travels vary varies identify identifies known making taking
come comes came work works worked
""")
)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    set_a, set_b = set(a), set(b)
    if not set_a and not set_b:
        return 1.0
    return len(set_a & set_b) / len(set_a | set_b)


def near_duplicate(a: str, b: str, threshold: float = 0.8) -> bool:
    """Whether two texts (exam questions, say) say nearly the same thing: token-set Jaccard ≥ threshold."""
    return jaccard((stem(t) for t in tokens(a)), (stem(t) for t in tokens(b))) >= threshold


# --- ranking ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RankedSentence:
    score: float
    passage_index: int
    sentence_index: int
    text: str


def bm25_rank(
    query: str,
    sentences: Sequence[tuple[int, int, str]],
    *,
    k1: float = 1.2,
    b: float = 0.5,
    drop: frozenset[str] = STOPWORDS | QUESTION_WORDS,
) -> list[RankedSentence]:
    """BM25 of `query` against `(passage_index, sentence_index, text)` sentences, best first.

    IDF comes from the sentences themselves; adjacent query-term pairs found adjacent in a sentence add
    a phrase bonus. Ties keep document order, so the ranking is deterministic.
    """
    query_terms = terms(query, drop=drop)
    query_set = set(query_terms)
    query_pairs = set(itertools.pairwise(query_terms))
    documents = [terms(text) for _, _, text in sentences]
    if not documents:
        return []
    average_length = sum(len(doc) for doc in documents) / len(documents) or 1.0
    frequency = Counter(term for doc in documents for term in set(doc))
    total = len(documents)
    ranked: list[RankedSentence] = []
    for (passage_index, sentence_index, text), doc in zip(sentences, documents, strict=True):
        counts = Counter(doc)
        score = 0.0
        for term in query_set:
            tf = counts.get(term, 0)
            if not tf:
                continue
            idf = math.log(1 + (total - frequency[term] + 0.5) / (frequency[term] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / average_length))
        if query_pairs and score:
            pairs = set(itertools.pairwise(doc))
            score += 0.5 * len(query_pairs & pairs)
        ranked.append(RankedSentence(score, passage_index, sentence_index, text))
    ranked.sort(key=lambda item: (-item.score, item.passage_index, item.sentence_index))
    return ranked


# --- key terms -------------------------------------------------------------------------------------
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9]{1,6}s?$")
_TECHNICAL_SUFFIXES: Final = (
    "tion",
    "sion",
    "ism",
    "ology",
    "osis",
    "ase",
    "ity",
    "ance",
    "ence",
    "ics",
    "graphy",
    "ogen",
    "itis",
    "ium",
    "ide",
    "cyte",
    "plasm",
    "some",
    "sphere",
    "scope",
    "metry",
    "algorithm",
    "ization",
    "isation",
)
#: Generic modifiers and counts that never start a term ("two potassium ions", "certain symptoms").
_GENERIC = _wordset("""
basic big certain common current different early entire few general good great high important large last
late likely little long low major minor next particular possible previous recent second short similar
simple slight small specific strong third whole two three four five six seven eight nine ten hundred thousand
million billion
""")
_MAX_TERM_WORDS = 3
#: Nouns ending in -ly (other -ly words are adverbs and end a run).
_LY_NOUNS = _wordset("anomaly assembly family italy monopoly oligopoly rally supply butterfly")


def extract_key_terms(text: str, limit: int = 30, *, min_count: int | None = None) -> list[str]:
    """The key terms of a text, most important first: technical words, acronyms, names and short noun
    phrases. Candidates are one- to three-word runs of content words (split at stopwords, common verbs
    and punctuation), scored by C-value (frequency, discounted when the term mostly occurs inside a
    longer term) times a bonus for technical shape (hyphens, acronyms, names, Latinate suffixes).

    Used to build MCQ blanks and distractor pools. A term keeps its capitals only when it is written
    that way inside a sentence (`Broca`, `EEG`), so a sentence-initial `Neurons` becomes `neurons`.
    A plain (non-technical) phrase must occur `min_count` times; by default twice, once in a text of
    at most three sentences (a question, a single sentence).
    """
    sentences = split_sentences(text)
    if min_count is None:
        min_count = 1 if len(sentences) <= 3 else 2
    counts: Counter[tuple[str, ...]] = Counter()
    named: Counter[tuple[str, ...]] = Counter()
    surfaces: dict[tuple[str, ...], Counter[str]] = {}
    for sentence in sentences:
        for run in _runs(sentence):
            for size in range(1, min(_MAX_TERM_WORDS, len(run)) + 1):
                for start in range(len(run) - size + 1):
                    gram = run[start : start + size]
                    words = [word for word, _ in gram]
                    if not _plausible_term(words):
                        continue
                    key = tuple(stem(word) for word in words)
                    counts[key] += 1
                    surfaces.setdefault(key, Counter())[" ".join(words)] += 1
                    if any(word[0].isupper() for word in words[1:]) or (words[0][0].isupper() and not gram[0][1]):
                        named[key] += 1
    for key, forms in surfaces.items():
        # Written in lower case somewhere: a common term that a heading or title case capitalised.
        if named[key] and any(form == form.lower() for form in forms):
            del named[key]

    kept = {key for key in counts if _eligible(key, counts[key], named[key], surfaces[key], min_count)}
    containers: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for key in kept:
        for size in range(1, len(key)):
            for start in range(len(key) - size + 1):
                containers.setdefault(key[start : start + size], []).append(key)

    scored: list[tuple[float, str, tuple[str, ...]]] = []
    for key in kept:
        frequency = float(counts[key])
        longer = containers.get(key)
        if longer:
            frequency -= sum(counts[other] for other in longer) / len(longer)
        if frequency <= 0:
            continue  # only ever seen inside a longer term
        surface = _best_surface(surfaces[key], named[key] > 0)
        score = math.log2(len(key) + 1) * frequency * _shape_bonus(surface, named[key] > 0)
        scored.append((score, surface, key))
    scored.sort(key=lambda item: (-item[0], item[1].lower()))

    chosen: list[tuple[str, tuple[str, ...]]] = []
    for _, surface, key in scored:
        if any(_is_subsequence(key, other) for _, other in chosen):
            continue  # "cleft" adds nothing once "synaptic cleft" is in
        chosen.append((surface, key))
        if len(chosen) >= limit:
            break
    return [surface for surface, _ in chosen]


def _runs(sentence: str) -> Iterable[list[tuple[str, bool]]]:
    """Runs of content words between stopwords, common verbs and punctuation; each word comes with
    whether it starts the sentence."""
    run: list[tuple[str, bool]] = []
    position = 0
    for index, match in enumerate(WORD.finditer(sentence)):
        gap = sentence[position : match.start()]
        position = match.end()
        word = match.group(0).replace("’", "'")
        lowered = word.lower()
        if run and re.search(r"\S", gap):  # punctuation between two words ends a run
            yield run
            run = []
        if (
            lowered in _PHRASE_BREAKERS
            or (len(lowered) < 3 and not _ACRONYM.match(word))
            or (lowered.endswith("ly") and len(lowered) > 5 and lowered not in _LY_NOUNS)
        ):
            if run:
                yield run
            run = []
            continue
        run.append((word, index == 0))
    if run:
        yield run


def _looks_plural_or_verb(word: str) -> bool:
    lowered = word.lower()
    return (
        len(lowered) > 3
        and lowered.endswith("s")
        and not _ACRONYM.match(word)
        and not lowered.endswith(("ss", "us", "is", "ics", "ous", "'s"))
    )


def _plausible_term(words: list[str]) -> bool:
    first, last = words[0].lower(), words[-1].lower()
    if first in _GENERIC or first[:1].isdigit() or last[:1].isdigit():
        return False
    if last.endswith(("ed", "ly")) and len(last) > 4:
        return False  # "band stretched", "moves rapidly": a verb or an adverb ends the phrase
    # Inside an English noun phrase a modifier is rarely plural: "vesicles release" spans a verb.
    return not any(_looks_plural_or_verb(word) for word in words[:-1])


def _eligible(key: tuple[str, ...], count: int, named: int, surfaces: Counter[str], min_count: int) -> bool:
    surface = surfaces.most_common(1)[0][0]
    technical = (
        "-" in surface
        or named > 0
        or any(_ACRONYM.match(word) for word in surface.split(" "))
        or surface.lower().endswith(_TECHNICAL_SUFFIXES)
    )
    if len(key) == 1:
        if _ACRONYM.match(surface):
            return True
        if len(surface) < 5 or (surface.lower().endswith("ing") and "-" not in surface):
            return False  # short words are rarely terms; a lone -ing word is mostly a verb
        return count >= min_count or technical or len(surface) >= 9
    return count >= min_count or technical


def _best_surface(surfaces: Counter[str], named: bool) -> str:
    forms = sorted(surfaces.items(), key=lambda item: (-item[1], item[0]))
    if named:
        capitalised = [form for form, _ in forms if form != form.lower()]
        return capitalised[0] if capitalised else forms[0][0]
    return " ".join(word if _ACRONYM.match(word) else word.lower() for word in forms[0][0].split(" "))


def _shape_bonus(surface: str, named: bool) -> float:
    words = surface.split(" ")
    bonus = 1.0
    if any(_ACRONYM.match(word) for word in words):
        bonus += 0.8
    if any("-" in word for word in words):
        bonus += 0.5
    if words[-1].lower().endswith(_TECHNICAL_SUFFIXES):
        bonus += 0.4
    if named:
        bonus += 0.3
    if len(words) == 1 and len(surface) < 6 and not _ACRONYM.match(surface):
        bonus -= 0.4  # short common words make poor blanks
    return bonus


def _is_subsequence(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
    if len(short) >= len(long):
        return short == long
    return any(long[i : i + len(short)] == short for i in range(len(long) - len(short) + 1))
