"""Exam blueprints: the difficulty mix, the Bloom levels and the material (documents, page ranges) an exam
covers, turned into one slot per item, and the material spread so items come from many pages, not only
the chunks most similar to one query."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiteacher.curriculum.search import SearchHit

BLOOM_LEVELS = ("remember", "understand", "apply", "analyse")
DIFFICULTIES = ("easy", "medium", "hard")
#: What each level asks of the student, for the LLM's request (quoted data) and the docs.
BLOOM_HINTS = {
    "remember": "recall a fact, term or definition stated in the source",
    "understand": "explain or paraphrase an idea of the source in the student's own words",
    "apply": "use a concept of the source in a new, concrete situation",
    "analyse": "compare, relate or break down concepts of the source and say how they depend on each other",
}
PER_DOCUMENT_HITS = 80
MAX_DOCUMENTS = 20


@dataclass(frozen=True)
class Slot:
    kind: str  # "mcq" | "theory"
    bloom: str
    difficulty: str


def allocate(weights: dict[str, int], count: int, order: tuple[str, ...]) -> list[str]:
    """`count` labels in proportion to `weights` (largest remainder, ties in `order`), grouped in `order`."""
    total = sum(max(0, weights.get(label, 0)) for label in order)
    if count <= 0:
        return []
    if total <= 0:
        raise ValueError("weights must not all be zero")
    exact = {label: count * max(0, weights.get(label, 0)) / total for label in order}
    shares = {label: int(value) for label, value in exact.items()}
    rest = count - sum(shares.values())
    for label in sorted(order, key=lambda label: (-(exact[label] - shares[label]), order.index(label)))[:rest]:
        shares[label] += 1
    return [label for label in order for _ in range(shares[label])]


def plan_slots(num_mcq: int, num_theory: int, blueprint: dict[str, Any] | None, difficulty: str | None) -> list[Slot]:
    """One slot per item. Bloom levels are handed out from the lowest: MCQs take the lower levels, theory
    items the higher ones. Without a blueprint MCQs are `remember` and theory items `understand`."""
    blueprint = blueprint or {}
    total = num_mcq + num_theory
    bloom_weights = blueprint.get("bloom")
    if bloom_weights:
        levels = allocate(bloom_weights, total, BLOOM_LEVELS)
    else:
        levels = ["remember"] * num_mcq + ["understand"] * num_theory
    mix = blueprint.get("difficulty")
    if mix:
        grades = allocate(mix, total, DIFFICULTIES)
        # Interleave so both kinds get a share of every difficulty.
        grades = [grades[i] for i in sorted(range(total), key=lambda i: (i % 2, i))]
    else:
        grades = [difficulty or "medium"] * total
    kinds = ["mcq"] * num_mcq + ["theory"] * num_theory
    return [Slot(kind, level, grade) for kind, level, grade in zip(kinds, levels, grades, strict=True)]


def in_ranges(document_id: str, page: int, ranges: list[dict[str, Any]]) -> bool:
    for entry in ranges:
        if entry["document_id"] != document_id:
            continue
        first, last = entry.get("first_page") or 1, entry.get("last_page") or 10**9
        if first <= page <= last:
            return True
    return not any(entry["document_id"] == document_id for entry in ranges)


def spread_passages(
    scope_filters: dict[str, Any], document_ids: list[str], query: str, ranges: list[dict[str, Any]]
) -> list[SearchHit]:
    """Chunks from every document (within its page ranges), ordered round-robin: the best chunk of each
    page first, pages of different documents interleaved, then every page's second chunk, and so on."""
    from aiteacher.curriculum.search import SearchHit
    from aiteacher.embeddings import get_embedder
    from aiteacher.vectors import get_vector_store

    embedder = get_embedder()
    store = get_vector_store()
    store.ensure_collection(embedder.name, embedder.dimension)
    vector = embedder.embed_query(query)
    keyed: list[tuple[tuple[int, int, int], SearchHit]] = []
    for document_index, document_id in enumerate(document_ids[:MAX_DOCUMENTS]):
        hits = store.search(vector, filters={**scope_filters, "document_id": document_id}, limit=PER_DOCUMENT_HITS)
        pages: dict[int, list[Any]] = defaultdict(list)
        for hit in hits:
            page = int(hit.payload.get("page", 0))
            if in_ranges(document_id, page, ranges):
                pages[page].append(hit)
        # Pages ranked by their best chunk; a page's chunks keep their score order.
        for page_rank, page in enumerate(sorted(pages, key=lambda p: (-pages[p][0].score, p))):
            for depth, hit in enumerate(pages[page]):
                keyed.append(((depth, page_rank, document_index), SearchHit.of(hit, hit.payload.get("title", ""))))
    keyed.sort(key=lambda pair: pair[0])
    return [passage for _, passage in keyed]
