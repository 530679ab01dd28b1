"""The sparse (lexical) side of hybrid search: one Unicode-aware tokenizer with Snowball stemming, BM25 weights.

A document's sparse vector holds, for each stemmed term, BM25's saturated term frequency
`tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / AVERAGE_LENGTH))` (k1 1.2, b 0.3); a query's holds 1.0 per
distinct term. The chunk's context (title, section heading) adds one occurrence of each of its terms.
The collection's sparse vector carries Qdrant's IDF modifier, so the engine multiplies each term by its IDF
over the stored points at query time and the dot product is the BM25 score. Term ids are the first 31 bits of
the term's BLAKE2b digest: stable across processes and engines, with no vocabulary to keep.

The sparse side does not depend on the embedder: the same terms index chunks embedded by MiniLM or OpenAI.
`LEXICAL_MODEL` names this recipe (and the chunk context the dense side embeds too) and is recorded with each
collection; change it and collections must be re-indexed (`ensure_collection` says so, `aiteacher reindex`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Final

from aiteacher.text import SEARCH_STOPWORDS
from aiteacher.text import terms as text_terms

#: Version 2: chunks index their context (title, section heading) with their text, b 0.3; the dense side embeds
#: the same context (ingestion.chunking.embedding_text), so a bump re-indexes both.
LEXICAL_MODEL: Final = "bm25-snowball-english-2"
K1: Final = 1.2
#: Length normalisation. 0.3, not the textbook 0.75: chunks are short passages of near-equal length, where a
#: page's short last chunk gained ~45 % per matching term at 0.75 (chosen on bench/bench_hybrid.py, held-out split).
B: Final = 0.3
#: Expected chunk length in terms (about 1,000 characters of English prose).
AVERAGE_LENGTH: Final = 160.0
STOPWORDS: Final = SEARCH_STOPWORDS


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Sorted term ids and their weights (parallel lists)."""

    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


def terms(text: str) -> list[str]:
    """Normalized, stemmed terms of `text` in order (NFKC, case-folded, accents kept, hyphenated words split,
    short stop-word list dropped): `aiteacher.text.terms` with the search index's settings."""
    return text_terms(text, drop=SEARCH_STOPWORDS, compounds=False)


def term_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big") & 0x7FFFFFFF


def document_vector(text: str, *, context: str = "", k1: float = K1, b: float = B) -> SparseVector:
    """BM25 term-frequency weights of one chunk (the engine applies IDF).

    `context` (the document's title and the chunk's section heading, `aiteacher.text.context_text`) counts as
    one more occurrence of each of its terms, without adding to the chunk's length: a chunk of the "GNU grep
    manual" matches a question about grep even where the page does not name the tool.
    """
    found = terms(text)
    if not found:
        return SparseVector([], [])
    norm = k1 * (1 - b + b * len(found) / AVERAGE_LENGTH)
    counts = Counter(found)
    for term in dict.fromkeys(terms(context)):
        counts[term] += 1
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        key = term_id(term)
        weights[key] = weights.get(key, 0.0) + tf * (k1 + 1) / (tf + norm)
    return _sorted(weights)


def query_vector(text: str) -> SparseVector:
    """Weight 1.0 for each distinct term of the query."""
    return _sorted(dict.fromkeys((term_id(t) for t in terms(text)), 1.0))


def _sorted(weights: dict[int, float]) -> SparseVector:
    ordered = sorted(weights.items())
    return SparseVector([k for k, _ in ordered], [round(v, 6) for _, v in ordered])
