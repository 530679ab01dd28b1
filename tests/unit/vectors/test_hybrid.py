"""Hybrid search in both engines: the lexical side, in-engine fusion, engine agreement, old collections."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiteacher.vectors import EdgeStore, Fusion, QdrantServerStore, VectorPoint, VectorStore, VectorStoreMismatch
from aiteacher.vectors.base import (
    INDEX_RECIPE,
    SCOPE_KEY,
    adaptive_weight,
    filter_conditions,
    fuse_formula,
    missing_scores,
    top1_margin,
)
from aiteacher.vectors.lexical import LEXICAL_MODEL, document_vector, query_vector, terms

DIM = 8


def unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(DIM)]
    length = sum(x * x for x in vector) ** 0.5
    return [x / length for x in vector]


def point(
    index: int, text: str, vector: list[float], *, faculty: int = 1, semester: int = 1, document: str | None = None
) -> VectorPoint:
    return VectorPoint.for_chunk(
        vector=vector,
        faculty_id=faculty,
        semester_id=semester,
        department_id=None,
        course="c",
        document_id=document or f"d{index}",
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
    fusion = Fusion(dense_weight=0.6, saturation=6.0, confidence=0.0)  # fixed weights (adaptive: see below)
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
        assert json.loads((root / "hybrid.json").read_text())["lexical"] == INDEX_RECIPE
    finally:
        store.close()


@pytest.mark.parametrize(
    "recipe",
    [
        "bm25-snowball-english-1",  # before chunks were indexed in their context (title, section)
        LEXICAL_MODEL,  # before integer point ids and the scope field (`points-2`)
    ],
)
def test_a_collection_of_a_previous_recipe_asks_for_a_reindex(tmp_path: Path, recipe: str) -> None:
    root = tmp_path / "edge"
    root.mkdir()
    record = {"embedder": "test-embedder", "dimension": DIM, "lexical": recipe}
    (root / "hybrid.json").write_text(json.dumps(record))
    store = EdgeStore(root, collection="hybrid")
    try:
        assert record["lexical"] != INDEX_RECIPE
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


def at_cosine(cosine: float, axis: int) -> list[float]:
    """A unit vector with exactly `cosine` against the query `unit_axis(0)`."""
    vector = [0.0] * DIM
    vector[0], vector[axis] = cosine, (1 - cosine * cosine) ** 0.5
    return vector


def unit_axis(axis: int) -> list[float]:
    return at_cosine(1.0, axis if axis else 1)


BICAMERAL = "Weaknesses of a bicameral legislature: bills pass slowly and deadlock is common."
FLAT_LEXICAL = [
    "The main role of the two chambers of a legislature is to pass laws.",
    "Two chambers: the main houses of a legislature and their members.",
    "A legislature with two chambers has a main house and a second house.",
    "The main chambers of the legislature number two in most countries.",
    "Legislature: the two chambers and the main committees.",
]


def legislature_store(kind: str, root: Path, second_cosine: float = 0.6) -> VectorStore:
    """The shape of the ../shared/eval miss: the answer chunk is the clear dense winner but shares only one
    term with the question ("downsides" is not in the corpus); five chunks share its common terms ("main",
    "two", "chambers", "legislature") almost equally, so the lexical list is flat at the top."""
    opened = open_store(kind, root)
    opened.ensure_collection("test-embedder", DIM)
    # The answer page holds a second chunk; when its cosine is close to the first, the dense list looks flat
    # at the top counted per point, but not per page (as results are cut).
    second = point(0, "Deadlock between the houses delays the budget.", at_cosine(second_cosine, 2))
    second = VectorPoint.for_chunk(**{**second.payload, "chunk_index": 1, "vector": second.vector})
    points = [point(0, BICAMERAL, at_cosine(0.9, 1)), second]
    points += [point(1 + i, text, at_cosine(0.5 - 0.01 * i, 2 + i)) for i, text in enumerate(FLAT_LEXICAL)]
    fillers = [f"Filler passage {i} about rivers, bread and weather." for i in range(20)]
    points += [point(10 + i, text, at_cosine(0.3 - 0.005 * i, 1 + i % (DIM - 1))) for i, text in enumerate(fillers)]
    opened.upsert(points)
    return opened


@pytest.mark.parametrize("kind", ["server", "edge"])
def test_a_confident_dense_list_outweighs_a_flat_lexical_list(kind: str, tmp_path: Path) -> None:
    """The weakness: with fixed weights, chunks that share only a question's common terms outranked the
    answer that dense search put clearly first. The default fusion weighs each side by its own top-1 margin
    for this query, so the confident dense list wins, in both engines."""
    opened = legislature_store(kind, tmp_path)
    query = unit_axis(0)
    lexical = query_vector("What are the main downsides of having a legislature with two chambers?")
    try:
        fixed = opened.search(query, lexical=lexical, limit=3, fusion=Fusion(confidence=0.0))
        assert fixed[0].payload["document_id"] != "d0"  # the old fixed-weight formula: a flat lexical chunk wins
        adaptive = opened.search(query, lexical=lexical, limit=3)
        assert adaptive[0].payload["document_id"] == "d0"
        # The other way round: a lexical list with one clear winner (a rare term) against a flat dense list.
        rare = opened.search(
            [x / 2**0.5 for x in (a + b for a, b in zip(at_cosine(0.0, 3), at_cosine(0.0, 4), strict=True))],
            lexical=query_vector("bicameral deadlock"),
            limit=3,
        )
        assert rare[0].payload["document_id"] == "d0"
    finally:
        opened.close()


@pytest.mark.parametrize("kind", ["server", "edge"])
def test_the_adaptive_weight_by_page_counts_a_pages_chunks_once(kind: str, tmp_path: Path) -> None:
    """Two chunks of the answer page at the top of the dense list (0.9 and 0.895): per point the list looks
    flat and the flat lexical list wins; with `confidence_by_page` the engines read each candidate's page and
    the dense list is confident again."""
    opened = legislature_store(kind, tmp_path, second_cosine=0.895)
    query = unit_axis(0)
    lexical = query_vector("What are the main downsides of having a legislature with two chambers?")
    try:
        per_point = opened.search(query, lexical=lexical, limit=3)
        assert per_point[0].payload["document_id"] != "d0"
        by_page = opened.search(query, lexical=lexical, limit=3, fusion=Fusion(confidence_by_page=True))
        assert by_page[0].payload["document_id"] == "d0"
        assert set(by_page[0].payload) >= {"text", "page", "title"}  # winners still carry their whole payload
    finally:
        opened.close()


@pytest.mark.parametrize("fusion", [Fusion(), Fusion(confidence_by_page=True)])
def test_adaptive_fusion_ranks_alike_in_both_engines(fusion: Fusion, tmp_path: Path) -> None:
    rankings = []
    lexical = query_vector("main downsides of a legislature with two chambers")
    for kind in ("server", "edge"):
        opened = legislature_store(kind, tmp_path / kind, second_cosine=0.895)
        hits = opened.search(unit_axis(0), lexical=lexical, limit=10, fusion=fusion)
        rankings.append([(hit.id, round(hit.score, 4)) for hit in hits])
        opened.close()
    assert rankings[0] == rankings[1] and len(rankings[0]) == 10


def test_the_adaptive_weight_measures_margins_over_pages() -> None:
    """Two chunks of one page at the top are one result after the cut: with their pages, the dense list below
    is confident (page A far above page B) and wins over a flat lexical list; counted per point it is flat."""
    cosine = {"a1": 0.9, "a2": 0.899, "b": 0.5, **{f"f{i}": 0.45 - 0.01 * i for i in range(10)}}
    bm25 = {"a1": 2.0, "b": 9.2, **{f"f{i}": 9.1 - 0.01 * i for i in range(10)}}
    pages = {"a1": ("A", 1), "a2": ("A", 1), "b": ("B", 1), **{f"f{i}": (f"F{i}", 1) for i in range(10)}}
    by_page = Fusion(confidence_by_page=True)
    assert fuse_formula(cosine, bm25, by_page, 1, pages)[0][0] == "a1"
    assert fuse_formula(cosine, bm25, by_page, 1)[0][0] == "b"  # no pages given: per point
    assert fuse_formula(cosine, bm25, Fusion(), 1, pages)[0][0] == "b"  # the default counts points
    assert fuse_formula(cosine, bm25, Fusion(confidence=0.0), 1, pages)[0][0] == "b"


def test_the_adaptive_weight_follows_each_lists_top1_margin() -> None:
    prior = Fusion()
    confident, flat = [0.9, 0.5, 0.49, 0.48, 0.47], [9.2, 9.1, 9.0, 8.9, 4.0]
    lean_dense = adaptive_weight(confident, flat, prior)
    lean_lexical = adaptive_weight([0.55, 0.54, 0.53, 0.52, 0.3], [20.0, 5.0, 4.0, 3.0, 2.0], prior)
    assert lean_lexical < prior.dense_weight < lean_dense
    # Documented: prior * (margin + floor) ** confidence per side, renormalised.
    dense_side = 0.4 * ((0.9 - 0.5) / (0.9 - 0.47) + 0.05)
    lexical_side = 0.6 * ((9.2 - 9.1) / (9.2 - 4.0) + 0.05)
    assert lean_dense == pytest.approx(dense_side / (dense_side + lexical_side))
    # Equal margins keep the prior; confidence 0 is the fixed formula; ties at the top carry no confidence.
    assert adaptive_weight([3.0, 2.0, 1.0], [30.0, 20.0, 10.0], prior) == pytest.approx(prior.dense_weight)
    assert adaptive_weight(confident, flat, Fusion(confidence=0.0)) == prior.dense_weight
    assert top1_margin([1.0, 1.0, 0.5], 10) == 0.0 and top1_margin([1.0], 10) == 0.0
    assert top1_margin([5.0, 4.0, 3.0, 2.0, 1.0], 3) == pytest.approx(0.5)  # only the best k count


def test_a_filter_on_faculty_and_semester_is_one_condition_on_the_scope() -> None:
    """Both engines intersect two keyword conditions point by point; the derived scope field is one lookup."""
    assert filter_conditions({"faculty_id": 3, "semester_id": 2, "course": "CS101"}) == [
        (SCOPE_KEY, "3:2"),
        ("course", "CS101"),
    ]
    assert filter_conditions({"faculty_id": 3}) == [("faculty_id", "3")]
    assert filter_conditions({"faculty_id": 3, "semester_id": None}) == [("faculty_id", "3")]


@pytest.mark.parametrize("kind", ["server", "edge"])
def test_the_scope_filter_isolates_tenants_and_semesters(kind: str, tmp_path: Path) -> None:
    opened = open_store(kind, tmp_path)
    try:
        opened.ensure_collection("test-embedder", DIM)
        tenants = ((1, 1), (1, 2), (2, 1), (12, 1), (1, 21))
        # "1:21" and "12:1" must not meet: the scope joins the two ids with a separator.
        points = [
            point(i, text, unit(i), faculty=faculty, semester=semester, document=f"f{faculty}s{semester}d{i}")
            for faculty, semester in tenants
            for i, text in enumerate(TEXTS)
        ]
        opened.upsert(points)
        for faculty, semester in tenants:
            filters = {"faculty_id": faculty, "semester_id": semester}
            hits = opened.search(unit(4), lexical=query_vector("radix sort digits"), filters=filters, limit=20)
            assert len(hits) == len(TEXTS)
            assert {(hit.payload["faculty_id"], hit.payload["semester_id"]) for hit in hits} == {
                (str(faculty), str(semester))
            }
            assert opened.count(filters) == len(TEXTS)
        assert opened.count({"faculty_id": 1}) == 3 * len(TEXTS)
    finally:
        opened.close()


def test_chunk_point_ids_are_stable_63_bit_integers() -> None:
    from aiteacher.vectors import chunk_point_id

    ids = {chunk_point_id(document, chunk) for document in range(200) for chunk in range(50)}
    assert len(ids) == 200 * 50
    assert all(isinstance(i, int) and 0 <= i < 2**63 for i in ids)
    assert chunk_point_id(7, 3) == chunk_point_id("7", 3)


def test_a_hybrid_search_looks_up_only_the_scores_it_does_not_know() -> None:
    """Lexical candidates missing from the dense list need their cosine; dense candidates missing from the
    lexical list need their BM25 only when that list is full (a short one holds every point with a query term,
    so the rest score exactly 0)."""
    cosine = {"a": 0.9, "b": 0.8, "c": 0.7}
    bm25 = {"b": 3.0, "d": 2.0}
    assert missing_scores(cosine, bm25, lexical_limit=2) == ({"d"}, {"a", "c"})
    assert missing_scores(cosine, bm25, lexical_limit=40) == ({"d"}, set())
    assert missing_scores(cosine, {}, lexical_limit=40) == (set(), set())


class _BatchSpy:
    """An Edge shard that records the requests of each `query_batch`."""

    def __init__(self, shard: object) -> None:
        self._shard, self.batches = shard, []

    def query_batch(self, batch: object) -> object:
        self.batches.append(len(batch.queries))
        return self._shard.query_batch(batch)

    def __getattr__(self, name: str) -> object:
        return getattr(self._shard, name)


def test_edge_scores_no_bm25_when_the_lexical_list_is_short(tmp_path: Path) -> None:
    """Few points carry the query's term: the second batch looks up cosines only (one request, not a
    re-scoring of every candidate on both sides), and the ranking is still the exact fusion."""
    opened = EdgeStore(tmp_path / "edge", collection="hybrid")
    try:
        opened.ensure_collection("test-embedder", DIM)
        opened.upsert(
            [point(i, "radix digit bucket" if i < 5 else "merge heap pivot", unit(100 + i)) for i in range(60)]
        )
        spy = _BatchSpy(opened._shard)
        opened._shard = spy
        query, lexical = unit(1), query_vector("radix")
        hits = opened.search(query, lexical=lexical, limit=10)
        assert spy.batches == [2, 1]
        cosine = {h.id: h.score for h in opened.search(query, limit=60)}
        bm25 = {h.id: h.score for h in opened.search(None, lexical=lexical, limit=60)}
        assert len(bm25) == 5
        top_dense = sorted(cosine, key=cosine.get, reverse=True)[: Fusion().dense_candidates(10)]
        candidates = {*top_dense, *bm25}
        expected = fuse_formula({i: cosine[i] for i in candidates}, bm25, Fusion(), 10)
        assert [h.id for h in hits] == [i for i, _ in expected]
    finally:
        opened._shard = spy._shard
        opened.close()


@pytest.mark.parametrize("kind", ["server", "edge"])
def test_hybrid_search_fuses_every_candidate_with_its_exact_scores(kind: str, tmp_path: Path) -> None:
    """The hybrid search ranks and scores like `fuse_formula` over every candidate's exact cosine and BM25."""
    opened = open_store(kind, tmp_path)
    try:
        opened.ensure_collection("test-embedder", DIM)
        rng = random.Random(3)
        words = [
            "sort",
            "merge",
            "heap",
            "radix",
            "pivot",
            "digit",
            "array",
            "binary",
            "cache",
            "pattern",
            "flag",
            "tree",
        ]
        opened.upsert([point(i, " ".join(rng.choices(words, k=12)), unit(100 + i)) for i in range(120)])
        fusion = Fusion()
        for seed in range(10):
            query, lexical = unit(seed), query_vector(" ".join(rng.sample(words, 3)))
            hits = opened.search(query, lexical=lexical, limit=10, fusion=fusion)
            cosine = {h.id: h.score for h in opened.search(query, limit=120)}
            bm25 = {h.id: h.score for h in opened.search(None, lexical=lexical, limit=120)}
            dense_list = sorted(cosine.values(), reverse=True)[: fusion.dense_candidates(10)]
            lexical_list = sorted(bm25.values(), reverse=True)[: fusion.candidates(10)]
            top_dense = set(sorted(cosine, key=cosine.get, reverse=True)[: len(dense_list)])
            top_lexical = set(sorted(bm25, key=bm25.get, reverse=True)[: len(lexical_list)])
            candidates = top_dense | top_lexical
            expected = fuse_formula(
                {i: cosine[i] for i in candidates}, {i: bm25[i] for i in candidates if i in bm25}, fusion, 10
            )
            assert [h.id for h in hits] == [i for i, _ in expected]
            assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    finally:
        opened.close()
