"""The vector store interface, its data types and errors, and the payload rules both engines share.

A chunk point holds two vectors: the embedder's dense vector (`DENSE_VECTOR`, cosine) and a sparse
lexical one (`LEXICAL_VECTOR`, BM25 term weights from `aiteacher.vectors.lexical`, with Qdrant's IDF
modifier). A search with both fuses them inside the engine (prefetch of each side, then `Fusion`).

Payload of a chunk point: `{faculty_id, semester_id, department_id, course, document_id, title,
page, text, section, chunk_index}` (`section`: the heading the chunk falls under, may be ""). The five
filterable fields are stored as strings: Qdrant's tenant index (`is_tenant`) exists only for keyword
fields, and one type for all of them means `3` and `"3"` name the same tenant on write and on
filter alike. Search hits therefore carry those ids as strings.

Stored points also carry `scope`, `"<faculty_id>:<semester_id>"` (`SCOPE_KEY`, indexed), derived on write: a
filter naming both a faculty and a semester (every student search) becomes one condition on it. Both engines
otherwise intersect the two keyword conditions point by point, which made a filtered search 4-5x slower at
100k points (docs/benchmarks.md). `INDEX_RECIPE` records this with each collection.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from aiteacher.text import context_text
from aiteacher.vectors.lexical import LEXICAL_MODEL, SparseVector, document_vector

#: How a collection's points are built beyond the embedder: the lexical recipe, and the point layout (`points-2`:
#: integer ids, the `scope` field). Recorded with each collection; a change makes `ensure_collection` ask for
#: `aiteacher reindex`.
INDEX_RECIPE = f"{LEXICAL_MODEL}/points-2"

#: Payload fields a search, count or delete may filter on (exact match, all `must`).
FILTER_KEYS: tuple[str, ...] = ("faculty_id", "semester_id", "department_id", "course", "document_id")
#: The tenant field: keyword index with `is_tenant=True`; every student query filters on it.
TENANT_KEY = "faculty_id"
#: The derived (faculty, semester) field a filter on both becomes; never passed by callers.
SCOPE_KEY = "scope"
#: Fields with a keyword payload index in both engines.
INDEXED_KEYS: tuple[str, ...] = (*FILTER_KEYS, SCOPE_KEY)
#: Fields a point must carry: without them it could not be isolated or deleted.
REQUIRED_KEYS: tuple[str, ...] = ("faculty_id", "document_id")
#: uuid5 namespace of chunk point ids (fixed forever: changing it orphans every stored point).
CHUNK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://aiteacher.dev/vectors/chunk")

#: Names of the two vectors of a point.
DENSE_VECTOR = "dense"
LEXICAL_VECTOR = "lexical"

FilterValue = int | str | None
Filters = Mapping[str, FilterValue]


class VectorStoreError(RuntimeError):
    """The vector store cannot do what was asked (not set up, closed, bad input)."""


class VectorStoreMismatch(VectorStoreError):
    """The collection was built by another embedder (or dimension) than the one in use."""


class VectorStoreLocked(VectorStoreError):
    """The embedded store's folder is held by another process (embedded stores are single-process)."""


def chunk_point_id(document_id: int | str, chunk_index: int) -> int:
    """The deterministic point id of a document's chunk: re-ingesting overwrites instead of duplicating.

    A 63-bit integer (the top bits of a uuid5), which Qdrant takes as an unsigned id: an integer id crosses
    the engine's Python boundary in ~0.1 us, a UUID in ~2.5 us, and a hybrid search moves ~70 ids each way
    (docs/benchmarks.md). Collisions: ~n^2 / 2^64, 5e-6 at ten million chunks."""
    return uuid.uuid5(CHUNK_NAMESPACE, f"{document_id}:{chunk_index}").int >> 65


@dataclass(frozen=True, slots=True)
class VectorPoint:
    """A chunk point. `lexical` defaults to the BM25 vector of `payload["text"]` in its context (`payload["title"]`
    and `payload["section"]`, see `aiteacher.text.context_text`)."""

    id: int | str
    vector: Sequence[float]
    payload: Mapping[str, Any]
    lexical: SparseVector | None = None

    def lexical_vector(self) -> SparseVector:
        if self.lexical is not None:
            return self.lexical
        payload = self.payload
        context = context_text(payload.get("title"), payload.get("section"))
        return document_vector(str(payload.get("text") or ""), context=context)

    @classmethod
    def for_chunk(
        cls,
        *,
        vector: Sequence[float],
        faculty_id: int | str,
        semester_id: int | str | None,
        department_id: int | str | None,
        course: str,
        document_id: int | str,
        title: str,
        page: int | None,
        text: str,
        chunk_index: int,
        section: str = "",
    ) -> VectorPoint:
        """A chunk point with its deterministic id and the standard payload."""
        return cls(
            id=chunk_point_id(document_id, chunk_index),
            vector=vector,
            payload={
                "faculty_id": faculty_id,
                "semester_id": semester_id,
                "department_id": department_id,
                "course": course,
                "document_id": document_id,
                "title": title,
                "page": page,
                "text": text,
                "section": section,
                "chunk_index": chunk_index,
            },
        )


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fusion:
    """How a hybrid search combines its dense and lexical candidates (inside the engine).

    `formula` (the default): `dense_weight * cosine + (1 - dense_weight) * s / (s + saturation)` where `s` is
    the BM25 score. The lexical side fetches `max(prefetch, 2 * limit)` candidates under the same filter, the
    dense side half as many (at least `limit`), then
    scores the other side's candidates exactly (a filter on their ids), so every candidate of the union is
    fused with its real cosine and BM25 score (0 for a point without any query term, which is exact).
    `rrf`: Qdrant's weighted reciprocal rank fusion of the two candidate lists (prefetch + `Fusion.Rrf`).
    The defaults (w 0.4, s 6) were chosen on bench/bench_hybrid.py's GNU-manuals set (docs/benchmarks.md).

    Query-adaptive weight (`confidence` > 0, the default; formula only): `dense_weight` is the prior, and each
    side's weight is multiplied by its own confidence for this query, `(margin + confidence_floor) **
    confidence`, where a side's margin is its normalised top-1 gap over its best `confidence_k` candidates,
    `(top1 - top2) / (top1 - topK)` (0 for a tie at the top, 1 when the top stands alone), over points, or with
    `confidence_by_page` over pages (each page's best chunk, as results are cut one per page; the candidate
    searches then read `PAGE_FIELDS`, about 0.4 ms a query at 60 candidates). A dense list with one clear
    winner and a flat lexical list (its best chunks share only common query terms) lean dense, and the other
    way round. `confidence=0` is the fixed-weight formula. See `adaptive_weight`; measured in docs/benchmarks.md.
    """

    method: Literal["formula", "rrf"] = "formula"
    dense_weight: float = 0.4
    saturation: float = 6.0
    normalize: Literal["saturation", "minmax", "dbsf"] = "saturation"
    rrf_k: int = 60
    prefetch: int = 30
    confidence: float = 1.0
    confidence_k: int = 10
    confidence_floor: float = 0.05
    confidence_by_page: bool = False

    @property
    def reads_pages(self) -> bool:
        """Whether the candidate searches read `PAGE_FIELDS` (for margins over pages, not points)."""
        return self.method == "formula" and self.confidence > 0 and self.confidence_by_page

    def candidates(self, limit: int) -> int:
        """Lexical candidates: twice the limit (a search for 40 chunks fetches 80). Four times gave the same
        quality on both evaluation sets, recall 1.000 against 0.994-0.9999, and 1.60-1.75x the dense-only time
        at 40 chunks against 1.34-1.40x; once was not enough (recall@40 0.945; docs/benchmarks.md, "Speed")."""
        return min(1000, max(self.prefetch, 2 * limit))

    def dense_candidates(self, limit: int) -> int:
        """Fewer dense than lexical candidates: the dense search's cost grows with its limit, BM25's hardly,
        and every lexical candidate is scored by cosine anyway (see bench/bench_hybrid_speed.py)."""
        return min(1000, max(limit, self.candidates(limit) // 2))


SearchMode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """What built a collection: stored with it and checked by `ensure_collection`."""

    embedder: str
    dimension: int
    lexical: str | None = INDEX_RECIPE

    def as_dict(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "dimension": self.dimension, "lexical": self.lexical}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> CollectionRecord | None:
        if not data or "embedder" not in data or "dimension" not in data:
            return None
        lexical = data.get("lexical")
        return cls(
            embedder=str(data["embedder"]), dimension=int(data["dimension"]), lexical=str(lexical) if lexical else None
        )


@runtime_checkable
class VectorStore(Protocol):
    """One collection of chunk points with tenant-filtered nearest-neighbour search (cosine)."""

    def ensure_collection(self, embedder_name: str, dimension: int) -> None:
        """Create the collection if missing, recording the embedder; raise `VectorStoreMismatch` on a mismatch."""
        ...

    def upsert(self, points: list[VectorPoint]) -> None:
        """Insert or replace points by id (durable when it returns)."""
        ...

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        lexical: SparseVector | None = None,
        filters: Filters | None = None,
        limit: int = 10,
        fusion: Fusion | None = None,
    ) -> list[SearchHit]:
        """Best points first among those matching every non-None filter: by cosine with only `vector`, by BM25
        with only `lexical`, and by `fusion` of both when both are given."""
        ...

    def delete_document(self, document_id: int | str) -> None:
        """Remove every point of one document."""
        ...

    def count(self, filters: Filters | None = None) -> int:
        """Exact number of points matching every non-None filter."""
        ...

    def drop_collection(self) -> None:
        """Delete the collection and its record (re-indexing recreates it with the current layout)."""
        ...

    def close(self) -> None:
        """Release the client or the embedded shard (and its folder lock)."""
        ...


# --- shared rules ----------------------------------------------------------------------------------
def stored_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as stored: filterable fields as strings (None stays None), required ones present."""
    stored = dict(payload)
    for key in REQUIRED_KEYS:
        if stored.get(key) is None:
            raise ValueError(f"a vector point needs a {key} in its payload")
    for key in FILTER_KEYS:
        value = stored.get(key)
        if value is not None:
            stored[key] = _as_filter_string(key, value)
    stored.pop(SCOPE_KEY, None)
    if stored.get("semester_id") is not None:
        stored[SCOPE_KEY] = scope_value(stored["faculty_id"], stored["semester_id"])
    return stored


def scope_value(faculty_id: FilterValue, semester_id: FilterValue) -> str:
    return f"{_as_filter_string('faculty_id', faculty_id)}:{_as_filter_string('semester_id', semester_id)}"


def filter_conditions(filters: Filters | None) -> list[tuple[str, str]]:
    """`(key, string value)` for each non-None filter; an unknown key is an error, never silently ignored."""
    if not filters:
        return []
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise ValueError(f"unknown vector filter keys {sorted(unknown)}; allowed: {', '.join(FILTER_KEYS)}")
    conditions = {key: _as_filter_string(key, value) for key, value in filters.items() if value is not None}
    if "faculty_id" in conditions and "semester_id" in conditions:
        scope = scope_value(conditions.pop("faculty_id"), conditions.pop("semester_id"))
        return [(SCOPE_KEY, scope), *conditions.items()]
    return list(conditions.items())


def check_vector(vector: Sequence[float], dimension: int | None) -> list[float]:
    values = [float(x) for x in vector]
    if dimension is not None and len(values) != dimension:
        raise ValueError(f"vector has {len(values)} dimensions, the collection holds {dimension}")
    return values


def fuse_formula(
    cosine: Mapping[Any, float],
    bm25: Mapping[Any, float],
    fusion: Fusion,
    limit: int,
    pages: Mapping[Any, Hashable] | None = None,
) -> list[tuple[Any, float]]:
    """`Fusion`'s formula over the union of candidates, best first (ties by id, for a stable order).

    `pages` maps a candidate to its (document, page) (`page_key`): the adaptive weight measures each list's
    margin over pages, its best chunk each, as results are cut one per page; without it, over points.
    One sort per side for the confidence, one pass to fuse, one sort."""
    ids = list(cosine.keys() | bm25.keys())
    raw_dense = list(map(cosine.get, ids, itertools.repeat(0.0)))
    raw_lexical = list(map(bm25.get, ids, itertools.repeat(0.0)))
    if fusion.reads_pages and pages:
        groups = [pages.get(point_id, point_id) for point_id in ids]
        weight = adaptive_weight(best_per_group(raw_dense, groups), best_per_group(raw_lexical, groups), fusion)
    else:
        weight = adaptive_weight(raw_dense, raw_lexical, fusion)
    dense = normalized(raw_dense, fusion, lexical=False)
    lexical = normalized(raw_lexical, fusion, lexical=True)
    fused = [weight * d + (1 - weight) * s for d, s in zip(dense, lexical, strict=True)]
    order = sorted(range(len(ids)), key=fused.__getitem__, reverse=True)
    if not order:
        return []
    # Ties go by id (as text), the same in both engines; only the scores at the cut need it (str() per id costs).
    cut = fused[order[min(limit, len(order)) - 1]]
    head = [i for i in order if fused[i] >= cut]
    head.sort(key=lambda i: (-fused[i], str(ids[i])))
    return [(ids[i], fused[i]) for i in head[:limit]]


#: The payload fields a hybrid search reads from its candidates for the adaptive weight (`page_key`).
PAGE_FIELDS: tuple[str, ...] = ("document_id", "page")


def page_key(point_id: Any, payload: Mapping[str, Any] | None) -> Hashable:
    """What one result stands for after the cut to one per page: (document, page); a point without a page
    (or without a payload) stands for itself."""
    if not payload or payload.get("page") is None:
        return point_id
    return (str(payload.get("document_id")), payload.get("page"))


def best_per_group(scores: Sequence[float], groups: Sequence[Hashable]) -> list[float]:
    best: dict[Hashable, float] = {}
    for score, group in zip(scores, groups, strict=True):
        if score > best.get(group, float("-inf")):
            best[group] = score
    return list(best.values())


def missing_scores(
    cosine: Mapping[Any, float], bm25: Mapping[Any, float], lexical_limit: int
) -> tuple[set[Any], set[Any]]:
    """The candidates whose other score a hybrid search must still look up: (need a cosine, need a BM25).

    Every lexical candidate missing from the dense list needs its cosine (a dense list shorter than its limit
    holds every point under the filter, so then none is missing). A dense candidate missing from the lexical
    list needs its BM25 only when that list is full: a shorter one holds every point with a query term under
    the filter, so the others score exactly 0, which `fuse_formula` assumes for an absent score."""
    need_cosine = bm25.keys() - cosine.keys()
    need_bm25 = cosine.keys() - bm25.keys() if len(bm25) >= lexical_limit else set()
    return need_cosine, need_bm25


def adaptive_weight(dense: Sequence[float], lexical: Sequence[float], fusion: Fusion) -> float:
    """This query's dense weight: the prior `fusion.dense_weight`, each side scaled by its confidence
    `(top1_margin(side) + floor) ** confidence` and the two renormalised to sum to 1 (see `Fusion`)."""
    prior = fusion.dense_weight
    if fusion.confidence <= 0:
        return prior
    floor, power = fusion.confidence_floor, fusion.confidence
    dense_side = prior * (top1_margin(dense, fusion.confidence_k) + floor) ** power
    lexical_side = (1 - prior) * (top1_margin(lexical, fusion.confidence_k) + floor) ** power
    total = dense_side + lexical_side
    return dense_side / total if total > 0 else prior


def top1_margin(scores: Sequence[float], k: int) -> float:
    """How far one list's best score stands above its second, relative to the spread of its best `k`:
    `(s1 - s2) / (s1 - sk)` in 0..1 (0 for fewer than two scores or a flat top). Scale-free, so a cosine list
    and a BM25 list compare. `sorted` (C) over a query's candidates (at most 2,000) takes a third of the
    time of `heapq.nlargest`, whose loop runs in Python."""
    top = sorted(scores, reverse=True)[: max(2, k)]
    if len(top) < 2 or top[0] <= top[-1]:
        return 0.0
    return (top[0] - top[1]) / (top[0] - top[-1])


def normalized(scores: list[float], fusion: Fusion, *, lexical: bool) -> list[float]:
    """One side's scores over the candidates, on a 0..1 scale as `fusion.normalize` says."""
    if fusion.normalize == "saturation":
        if not lexical:
            return scores
        return [s / (s + fusion.saturation) if s > 0 else 0.0 for s in scores]
    if not scores:
        return scores
    if fusion.normalize == "minmax":
        low, high = min(scores), max(scores)
    else:  # dbsf: mean +- 3 standard deviations (Qdrant's distribution-based score fusion)
        mean = sum(scores) / len(scores)
        spread = 3 * (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        low, high = mean - spread, mean + spread
    if high <= low:
        return [0.0 for _ in scores]
    return [min(1.0, max(0.0, (s - low) / (high - low))) for s in scores]


def check_query(vector: Sequence[float] | None, lexical: SparseVector | None) -> None:
    if vector is None and lexical is None:
        raise ValueError("a search needs a dense vector, a lexical vector or both")


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be between 1 and 1000")
    return limit


def check_record(location: str, recorded: CollectionRecord | None, wanted: CollectionRecord) -> None:
    if recorded is None:
        raise VectorStoreMismatch(
            f"vector collection {location} exists but records no embedder; it was not built by AI-Teacher. "
            f"Delete it or configure another collection for embedder {wanted.embedder} ({wanted.dimension}-d)"
        )
    if (
        recorded.embedder == wanted.embedder
        and recorded.dimension == wanted.dimension
        and recorded.lexical != wanted.lexical
    ):
        raise VectorStoreMismatch(
            f"vector collection {location} was not built with the current index recipe {wanted.lexical} "
            f"(it records {recorded.lexical or 'none: built before hybrid search'}); re-index: run "
            "`aiteacher reindex` (it recreates the collection and re-ingests every document)"
        )
    if recorded != wanted:
        raise VectorStoreMismatch(
            f"vector collection {location} was built by embedder {recorded.embedder} ({recorded.dimension}-d) "
            f"but embedder {wanted.embedder} ({wanted.dimension}-d) is configured; re-index into a new collection "
            "or switch the embedder back"
        )


def _as_filter_string(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str | uuid.UUID):
        raise ValueError(f"{key} must be an int or a string, not {type(value).__name__}")
    return str(value)
