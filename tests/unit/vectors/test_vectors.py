"""Contract tests of `VectorStore`, run against both real engines: qdrant-client (`:memory:` mode,
the same client code as against a server) and Qdrant Edge on disk in a temporary folder."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiteacher.vectors import (
    EdgeStore,
    QdrantServerStore,
    SearchHit,
    VectorPoint,
    VectorStore,
    VectorStoreError,
    VectorStoreLocked,
    VectorStoreMismatch,
    chunk_point_id,
    get_vector_store,
)

EMBEDDER = "test-embedder"
DIM = 16


def unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(DIM)]
    length = sum(x * x for x in vector) ** 0.5
    return [x / length for x in vector]


def blend(base: list[float], other: list[float], weight: float) -> list[float]:
    """A vector between `base` (weight 0) and `other` (weight 1): nearer to base for small weights."""
    mixed = [(1 - weight) * a + weight * b for a, b in zip(base, other, strict=True)]
    length = sum(x * x for x in mixed) ** 0.5
    return [x / length for x in mixed]


def chunk(
    document_id: int | str,
    index: int,
    vector: list[float],
    *,
    faculty: int = 1,
    semester: int = 1,
    department: int | None = 10,
    course: str = "algorithms",
    text: str | None = None,
) -> VectorPoint:
    return VectorPoint.for_chunk(
        vector=vector,
        faculty_id=faculty,
        semester_id=semester,
        department_id=department,
        course=course,
        document_id=document_id,
        title=f"Document {document_id}",
        page=index + 1,
        text=text if text is not None else f"chunk {index} of {document_id}",
        chunk_index=index,
    )


def open_store(kind: str, root: Path) -> VectorStore:
    if kind == "server":
        return QdrantServerStore(location=":memory:", collection="test")
    return EdgeStore(root / "qdrant-edge", collection="test")


@pytest.fixture(params=["server", "edge"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened = open_store(request.param, tmp_path)
    opened.ensure_collection(EMBEDDER, DIM)
    yield opened
    opened.close()


# --- contract ------------------------------------------------------------------------------------
def test_search_returns_nearest_first_with_payload(store: VectorStore) -> None:
    query = unit(1)
    points = [chunk(7, i, blend(query, unit(100 + i), weight)) for i, weight in enumerate([0.6, 0.1, 0.9, 0.3])]
    store.upsert(points)

    hits = store.search(query, filters={"faculty_id": 1}, limit=3)

    assert [hit.id for hit in hits] == [str(points[1].id), str(points[3].id), str(points[0].id)]
    assert all(isinstance(hit, SearchHit) for hit in hits)
    assert hits[0].score > hits[1].score > hits[2].score
    assert hits[0].score <= 1.0 + 1e-6
    assert hits[0].payload == {
        "faculty_id": "1",
        "semester_id": "1",
        "scope": "1:1",
        "department_id": "10",
        "course": "algorithms",
        "document_id": "7",
        "title": "Document 7",
        "page": 2,
        "text": "chunk 1 of 7",
        "section": "",
        "chunk_index": 1,
    }
    assert len(store.search(query, limit=10)) == 4


def test_filters_isolate_tenants(store: VectorStore) -> None:
    target = unit(2)
    mine = [chunk(1, i, blend(target, unit(200 + i), 0.5)) for i in range(3)]
    # Other tenants hold the exact query vector: the nearest points overall, never to be returned.
    other_semester = [chunk(2, i, target, faculty=1, semester=2) for i in range(3)]
    other_faculty = [chunk(3, i, target, faculty=2, semester=1) for i in range(3)]
    store.upsert(mine + other_semester + other_faculty)

    hits = store.search(target, filters={"faculty_id": 1, "semester_id": 1}, limit=10)
    assert {hit.id for hit in hits} == {str(point.id) for point in mine}
    assert {hit.payload["faculty_id"] for hit in hits} == {"1"}
    assert {hit.payload["semester_id"] for hit in hits} == {"1"}

    hits = store.search(target, filters={"faculty_id": 2}, limit=10)
    assert {hit.id for hit in hits} == {str(point.id) for point in other_faculty}

    # Ids match whether given as int or str; None means "no condition".
    as_strings = store.search(target, filters={"faculty_id": "1", "semester_id": "1", "course": None}, limit=10)
    assert {hit.id for hit in as_strings} == {str(point.id) for point in mine}

    assert store.count({"faculty_id": 1, "semester_id": 1}) == 3
    assert store.count({"faculty_id": 1}) == 6
    assert store.count({"faculty_id": 3}) == 0
    assert store.count() == 9
    assert store.search(target, filters={"faculty_id": 3}, limit=10) == []


def test_course_and_department_filters(store: VectorStore) -> None:
    query = unit(3)
    algorithms = [chunk(1, i, unit(300 + i)) for i in range(2)]
    databases = [chunk(2, i, unit(310 + i), course="databases", department=11) for i in range(3)]
    store.upsert(algorithms + databases)

    hits = store.search(query, filters={"faculty_id": 1, "course": "databases"}, limit=10)
    assert {hit.id for hit in hits} == {str(point.id) for point in databases}
    assert store.count({"faculty_id": 1, "department_id": 10}) == 2
    assert store.count({"document_id": 2}) == 3
    assert store.count({"document_id": "2", "course": "algorithms"}) == 0


def test_unknown_filter_keys_are_rejected(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="unknown vector filter keys"):
        store.search(unit(4), filters={"faculty": 1})
    with pytest.raises(ValueError, match="unknown vector filter keys"):
        store.count({"tenant": 1})


def test_deterministic_ids_make_upserts_idempotent(store: VectorStore) -> None:
    points = [chunk(5, i, unit(500 + i)) for i in range(4)]
    assert [p.id for p in points] == [chunk_point_id(5, i) for i in range(4)]
    store.upsert(points)
    store.upsert(points)
    assert store.count() == 4

    # Re-ingesting a chunk replaces it.
    store.upsert([chunk(5, 0, unit(500), text="revised text")])
    assert store.count() == 4
    hit = store.search(unit(500), filters={"document_id": 5}, limit=1)[0]
    assert hit.id == str(chunk_point_id(5, 0))
    assert hit.payload["text"] == "revised text"


def test_delete_document_removes_only_that_document(store: VectorStore) -> None:
    keep = [chunk(1, i, unit(600 + i)) for i in range(3)]
    drop = [chunk(2, i, unit(610 + i)) for i in range(4)]
    other_tenant = [chunk(2, i + 10, unit(620 + i), faculty=2) for i in range(2)]  # same document id elsewhere
    store.upsert(keep + drop + other_tenant)

    store.delete_document(2)

    assert store.count() == 3
    assert store.count({"document_id": 1}) == 3
    remaining = store.search(unit(610), limit=10)
    assert {hit.id for hit in remaining} == {str(point.id) for point in keep}
    store.delete_document(999)  # unknown document: nothing happens
    assert store.count() == 3


def test_embedder_mismatch_raises(store: VectorStore) -> None:
    store.ensure_collection(EMBEDDER, DIM)  # same embedder again: fine
    with pytest.raises(VectorStoreMismatch) as raised:
        store.ensure_collection("another-embedder", DIM)
    assert EMBEDDER in str(raised.value) and "another-embedder" in str(raised.value)
    with pytest.raises(VectorStoreMismatch, match=f"{DIM + 1}-d"):
        store.ensure_collection(EMBEDDER, DIM + 1)


def test_bad_points_and_vectors_are_rejected(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="faculty_id"):
        store.upsert([VectorPoint(id=chunk_point_id(1, 0), vector=unit(7), payload={"document_id": 1})])
    with pytest.raises(ValueError, match="dimensions"):
        store.upsert([chunk(1, 0, [1.0, 0.0])])
    with pytest.raises(ValueError, match="dimensions"):
        store.search([1.0, 0.0], limit=3)
    with pytest.raises(ValueError, match="limit"):
        store.search(unit(7), limit=0)
    assert store.count() == 0


def test_concurrent_writers_and_readers(store: VectorStore) -> None:
    errors: list[BaseException] = []

    def work(document: int) -> None:
        try:
            for i in range(10):
                store.upsert([chunk(document, i, unit(document * 100 + i))])
                hits = store.search(unit(document * 100 + i), filters={"document_id": document}, limit=1)
                assert hits and hits[0].id == str(chunk_point_id(document, i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(document,)) for document in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert store.count() == 40


@pytest.mark.parametrize("kind", ["server", "edge"])
def test_before_ensure_collection(kind: str, tmp_path: Path) -> None:
    fresh = open_store(kind, tmp_path)
    try:
        assert fresh.search(unit(8), filters={"faculty_id": 1}) == []
        assert fresh.count() == 0
        fresh.delete_document(1)
        with pytest.raises(VectorStoreError, match="ensure_collection"):
            fresh.upsert([chunk(1, 0, unit(8))])
    finally:
        fresh.close()


def test_chunk_point_ids() -> None:
    assert chunk_point_id(3, 0) == chunk_point_id("3", 0)
    assert len({chunk_point_id(3, i) for i in range(100)} | {chunk_point_id(4, 0)}) == 101
    point = chunk(3, 2, unit(9))
    assert point.id == chunk_point_id(3, 2)
    assert point.payload["chunk_index"] == 2


# --- Qdrant Edge on disk -------------------------------------------------------------------------
def test_edge_reopen_keeps_data_and_record(tmp_path: Path) -> None:
    root = tmp_path / "qdrant-edge"
    first = EdgeStore(root, collection="test")
    first.ensure_collection(EMBEDDER, DIM)
    points = [chunk(1, i, unit(900 + i)) for i in range(5)]
    first.upsert(points)
    first.delete_document(999)
    first.close()
    first.close()  # idempotent
    with pytest.raises(VectorStoreError, match="closed"):
        first.count()

    assert json.loads((root / "test.json").read_text())["embedder"] == EMBEDDER
    again = EdgeStore(root, collection="test")
    try:
        # Readable before ensure_collection: the record on disk says what the shard holds.
        assert again.count() == 5
        assert again.search(unit(902), filters={"faculty_id": 1}, limit=1)[0].id == str(points[2].id)
        with pytest.raises(VectorStoreMismatch, match="another-embedder"):
            again.ensure_collection("another-embedder", DIM)
        again.ensure_collection(EMBEDDER, DIM)
        again.upsert([chunk(2, 0, unit(950))])
        assert again.count() == 6
    finally:
        again.close()


def test_edge_second_open_in_the_same_process_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "qdrant-edge"
    owner = EdgeStore(root, collection="test")
    try:
        with pytest.raises(VectorStoreLocked, match="already open in this process"):
            EdgeStore(root, collection="test")
    finally:
        owner.close()
    EdgeStore(root, collection="test").close()  # released on close


OTHER_PROCESS = textwrap.dedent("""
    import json, sys
    from aiteacher.vectors import EdgeStore, VectorStoreLocked
    try:
        store = EdgeStore(sys.argv[1], collection="test")
    except VectorStoreLocked as exc:
        print(json.dumps({"locked": True, "message": str(exc)}))
    else:
        count = store.count({"faculty_id": 1})
        store.close()
        print(json.dumps({"locked": False, "count": count}))
""")


def run_other_process(root: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(root)], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_edge_second_process_is_refused_before_touching_the_shard(tmp_path: Path) -> None:
    root = tmp_path / "qdrant-edge"
    owner = EdgeStore(root, collection="test")
    owner.ensure_collection(EMBEDDER, DIM)
    points = [chunk(1, i, unit(1000 + i)) for i in range(6)]
    owner.upsert(points)
    try:
        outcome = run_other_process(root)
        assert outcome["locked"] is True
        assert str(root.resolve()) in outcome["message"]
        assert f"pid {os.getpid()}" in outcome["message"]
        assert "QDRANT_URL" in outcome["message"]

        # The owner is unharmed: it still reads, writes and flushes.
        assert owner.count() == 6
        owner.upsert([chunk(2, 0, unit(1100))])
        assert owner.count() == 7
        assert owner.search(unit(1003), filters={"faculty_id": 1}, limit=1)[0].id == str(points[3].id)
    finally:
        owner.close()

    outcome = run_other_process(root)  # free again once the owner closed
    assert outcome == {"locked": False, "count": 7}


# --- get_vector_store ----------------------------------------------------------------------------
@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("AITEACHER_ENV", "test")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QDRANT_COLLECTION", "chunks")
    reset_caches()
    yield monkeypatch
    reset_caches()


def test_get_vector_store_defaults_to_edge_under_data_dir(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings_env.delenv("QDRANT_URL", raising=False)
    store = get_vector_store()
    assert isinstance(store, EdgeStore)
    assert get_vector_store() is store
    store.ensure_collection(EMBEDDER, DIM)
    assert store.shard_path == (tmp_path / "data" / "qdrant-edge" / "chunks").resolve()
    assert (tmp_path / "data" / "qdrant-edge" / "lock").exists()


def test_get_vector_store_uses_qdrant_url(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("QDRANT_URL", ":memory:")
    store = get_vector_store()
    assert isinstance(store, QdrantServerStore)
    assert store.collection == "chunks"
