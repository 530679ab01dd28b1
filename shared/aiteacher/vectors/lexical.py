"""The sparse (lexical) side of hybrid search: one Unicode-aware tokenizer with Snowball stemming, BM25 weights.

A document's sparse vector holds, for each stemmed term, BM25's saturated term frequency
`tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / AVERAGE_LENGTH))`; a query's holds 1.0 per distinct term.
The collection's sparse vector carries Qdrant's IDF modifier, so the engine multiplies each term by its IDF
over the stored points at query time and the dot product is the BM25 score. Term ids are the first 31 bits of
the term's BLAKE2b digest: stable across processes and engines, with no vocabulary to keep.

The sparse side does not depend on the embedder: the same terms index chunks embedded by MiniLM or OpenAI.
`LEXICAL_MODEL` names this recipe and is recorded with each collection; change it and collections re-index.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

LEXICAL_MODEL: Final = "bm25-snowball-english-1"
K1: Final = 1.2
B: Final = 0.75
#: Expected chunk length in terms (about 1,000 characters of English prose).
AVERAGE_LENGTH: Final = 160.0
MAX_TERM_CHARS: Final = 40

# Letters and digits of any script, joined by inner apostrophes or hyphens ("don't", "x-ray", "état-major").
_WORD: Final = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
# Short English function words: they carry no topic, and dropping them keeps query vectors small.
_STOPWORDS_TEXT: Final = (
    "a an and are as at be been but by can do does for from had has have how i if in into is it its of on or "
    "our so such than that the their them then there these they this to was we were what when where which who "
    "why will with would you your"
)
STOPWORDS: Final = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Sorted term ids and their weights (parallel lists)."""

    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def terms(text: str) -> list[str]:
    """Normalized, stemmed terms of `text` in order (NFKC, case-folded, accents kept, stop words dropped)."""
    normalized = unicodedata.normalize("NFKC", text).casefold()
    words = [w.replace("\u2019", "'") for w in _WORD.findall(normalized)]
    kept: list[str] = []
    for word in words:
        for part in word.split("-") if "-" in word else (word,):
            part = part.removesuffix("'s")
            if part and part not in STOPWORDS and len(part) <= MAX_TERM_CHARS:
                kept.append(part)
    return _stemmer().stemWords(kept) if kept else []


def term_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big") & 0x7FFFFFFF


def document_vector(text: str) -> SparseVector:
    """BM25 term-frequency weights of one chunk (the engine applies IDF)."""
    found = terms(text)
    if not found:
        return SparseVector([], [])
    norm = K1 * (1 - B + B * len(found) / AVERAGE_LENGTH)
    weights: dict[int, float] = {}
    for term, tf in Counter(found).items():
        key = term_id(term)
        weights[key] = weights.get(key, 0.0) + tf * (K1 + 1) / (tf + norm)
    return _sorted(weights)


def query_vector(text: str) -> SparseVector:
    """Weight 1.0 for each distinct term of the query."""
    return _sorted(dict.fromkeys((term_id(t) for t in terms(text)), 1.0))


def _sorted(weights: dict[int, float]) -> SparseVector:
    ordered = sorted(weights.items())
    return SparseVector([k for k, _ in ordered], [round(v, 6) for _, v in ordered])
