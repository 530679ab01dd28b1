"""Hybrid search in both engines: the lexical side, in-engine fusion, engine agreement, old collections."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiteacher.vectors import EdgeStore, Fusion, QdrantServerStore, VectorPoint, VectorStore, VectorStoreMismatch
from aiteacher.vectors.lexical import LEXICAL_MODEL, document_vector, query_vector, terms

DIM = 8


def unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(DIM)]
    length = sum(x * x for x in vector) ** 0.5
    return [x / length for x in vector]


def point(index: int, text: str, vector: list[float], *, faculty: int = 1) -> VectorPoint:
    return VectorPoint.for_chunk(
        vector=vector,
        faculty_id=faculty,
        semester_id=1,
        department_id=None,
        course="c",
        document_id=f"d{index}",
        title="t",
        page=1,
        text=text,
        chunk_index=0,
    )


TEXTS = [
    "Merge sort splits the array and merges the sorted halves.",
    "Quicksort partitions around a pivot element.",
    "Heapsort builds a binary heap and extracts the maximum repeatedly.",
    "The flag zarquon-7 disables the cache of compiled patterns.",
    "Radix sort orders integers digit by digit without comparisons.",
]


def open_store(kind: str, root: Path) -> VectorStore:
    if kind == "server":
        return QdrantServerStore(location=":memory:", collection="hybrid")
    return EdgeStore(root / "edge", collection="hybrid")


@pytest.fixture(params=["server", "edge"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened = open_store(request.param, tmp_path)
    opened.ensure_collection("test-embedder", DIM)
    opened.upsert([point(i, text, unit(i)) for i, text in enumerate(TEXTS)])
    opened.upsert([point(99, TEXTS[3], unit(3), faculty=2)])  # another tenant holds the same text
    yield opened
    opened.close()


def test_terms_are_unicode_aware_stemmed_and_without_stop_words() -> None:
    assert terms("The Running runners RAN; naïve Café-Crème, x-ray's") == [
        "run",
        "runner",
        "ran",
        "naïv",
        "café",
        "crème",
        "x",
        "ray",
    ]
    assert terms("Ｆｕｌｌｗｉｄｔｈ ＡＢＣ") == ["fullwidth", "abc"]  # NFKC
    assert terms("the of and") == [] and not query_vector("the of and")


def test_document_vectors_saturate_term_frequency_and_queries_weigh_terms_once() -> None:
    once, thrice = document_vector("heap"), document_vector("heap heap heap")
    assert once.indices == thrice.indices and once.values[0] < thrice.values[0] < 2.2  # (k1 + 1) bounds it
    query = query_vector("heaps heap HEAP")
    assert len(query.indices) == 1 and query.values == [1.0]


def test_lexical_search_finds_the_exact_term_within_the_tenant(store: VectorStore) -> None:
    hits = store.search(None, lexical=query_vector("zarquon-7"), filters={"faculty_id": 1}, limit=3)
    assert [hit.payload["document_id"] for hit in hits] == ["d3"]
    assert store.search(None, lexical=query_vector("the of"), filters={"faculty_id": 1}, limit=3) == []


def test_hybrid_search_ranks_the_exact_term_first_when_dense_alone_does_not(store: VectorStore) -> None:
    near_d1, near_d3 = unit(1), unit(3)
    mixed = [a + 0.8 * b for a, b in zip(near_d1, near_d3, strict=True)]
    query = [x / sum(y * y for y in mixed) ** 0.5 for x in mixed]  # the dense side prefers d1, then d3
    dense = store.search(query, filters={"faculty_id": 1}, limit=5)
    assert dense[0].payload["document_id"] == "d1"
    for fusion in (Fusion(), Fusion(method="rrf", dense_weight=0.3)):
        hybrid = store.search(
            query,
            lexical=query_vector("which flag disables the zarquon-7 cache"),
            filters={"faculty_id": 1},
            limit=5,
            fusion=fusion,
        )
        assert hybrid[0].payload["document_id"] == "d3"
        assert {hit.payload["faculty_id"] for hit in hybrid} == {"1"}
        assert len({hit.id for hit in hybrid}) == len(hybrid)


def test_formula_fusion_is_the_documented_weighted_sum(store: VectorStore) -> None:
    query, lexical = unit(2), query_vector("heap sort pivot")
    fusion = Fusion(dense_weight=0.6, saturation=6.0)
    fused = {
        hit.id: hit.score
        for hit in store.search(query, lexical=lexical, filters={"faculty_id": 1}, limit=5, fusion=fusion)
    }
    dense = {hit.id: hit.score for hit in store.search(query, filters={"faculty_id": 1}, limit=5)}
    sparse = {hit.id: hit.score for hit in store.search(None, lexical=lexical, filters={"faculty_id": 1}, limit=5)}
    for point_id, score in fused.items():
        bm25 = sparse.get(point_id, 0.0)
        expected = 0.6 * dense[point_id] + 0.4 * bm25 / (bm25 + 6.0)
        assert score == pytest.approx(expected, abs=1e-4)


def test_both_engines_rank_alike(tmp_path: Path) -> None:
    rankings = []
    for kind in ("server", "edge"):
        opened = open_store(kind, tmp_path / kind)
        opened.ensure_collection("test-embedder", DIM)
        opened.upsert([point(i, text, unit(i + 10)) for i, text in enumerate(TEXTS * 3)])
        hits = opened.search(unit(4), lexical=query_vector("sort the array by digit"), limit=10)
        rankings.append([(hit.id, round(hit.score, 4)) for hit in hits])
        opened.close()
    assert rankings[0] == rankings[1]


def test_a_collection_from_before_hybrid_search_asks_for_a_reindex(tmp_path: Path) -> None:
    root = tmp_path / "edge"
    root.mkdir()
    (root / "hybrid.json").write_text(json.dumps({"embedder": "test-embedder", "dimension": DIM}))
    store = EdgeStore(root, collection="hybrid")
    try:
        with pytest.raises(VectorStoreMismatch, match="aiteacher reindex"):
            store.ensure_collection("test-embedder", DIM)
        store.drop_collection()
        store.ensure_collection("test-embedder", DIM)
        assert json.loads((root / "hybrid.json").read_text())["lexical"] == LEXICAL_MODEL
    finally:
        store.close()


def test_a_collection_of_the_previous_recipe_asks_for_a_reindex(tmp_path: Path) -> None:
    """Chunks are now indexed in their context (title, section): collections of version 1 must be rebuilt."""
    root = tmp_path / "edge"
    root.mkdir()
    record = {"embedder": "test-embedder", "dimension": DIM, "lexical": "bm25-snowball-english-1"}
    (root / "hybrid.json").write_text(json.dumps(record))
    store = EdgeStore(root, collection="hybrid")
    try:
        assert record["lexical"] != LEXICAL_MODEL
        with pytest.raises(VectorStoreMismatch, match="aiteacher reindex"):
            store.ensure_collection("test-embedder", DIM)
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["server", "edge"])
def test_a_chunk_matches_a_question_naming_its_documents_title(kind: str, tmp_path: Path) -> None:
    """The weakness: "-k keeps the input files" is about bzip2 only by its document's title, so a question
    naming bzip2 found the gzip manual's wordier chunk first. The title and section heading are indexed with
    the chunk (VectorPoint's default lexical vector), in both engines."""
    opened = open_store(kind, tmp_path)
    opened.ensure_collection("test-embedder", DIM)
    chunks = [
        ("bzip2", "GNU bzip2 manual", "-k keeps the input files when compressing."),
        ("gzip", "GNU gzip manual", "-k keeps input files. Keep the input files when compressing with -k, too."),
    ]
    opened.upsert(
        [
            VectorPoint.for_chunk(
                vector=unit(i),
                faculty_id=1,
                semester_id=1,
                department_id=None,
                course="c",
                document_id=name,
                title=title,
                page=1,
                text=text,
                chunk_index=0,
                section="2.4 Options",
            )
            for i, (name, title, text) in enumerate(chunks)
        ]
    )
    try:
        hits = opened.search(None, lexical=query_vector("How does bzip2 keep the input files?"), limit=2)
        assert [hit.payload["document_id"] for hit in hits] == ["bzip2", "gzip"]
        assert hits[0].payload["section"] == "2.4 Options"
        # The section heading is indexed too: both chunks answer a question about options.
        assert len(opened.search(None, lexical=query_vector("options"), limit=2)) == 2
    finally:
        opened.close()


@pytest.mark.parametrize("normalize", ["minmax", "dbsf"])
def test_normalised_fusions_rank_alike_in_both_engines_and_stay_in_range(normalize: str, tmp_path: Path) -> None:
    fusion = Fusion(dense_weight=0.5, normalize=normalize)  # type: ignore[arg-type]
    rankings = []
    for kind in ("server", "edge"):
        opened = open_store(kind, tmp_path / kind)
        opened.ensure_collection("test-embedder", DIM)
        opened.upsert([point(i, text, unit(i + 10)) for i, text in enumerate(TEXTS * 3)])
        hits = opened.search(unit(4), lexical=query_vector("sort the array by digit"), limit=10, fusion=fusion)
        rankings.append([(hit.id, round(hit.score, 4)) for hit in hits])
        assert all(0.0 <= hit.score <= 1.0 for hit in hits)
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
        opened.close()
    assert rankings[0] == rankings[1]
