"""Qdrant Edge (`qdrant-edge-py`): the Qdrant engine in-process, on disk, for one process at a time.

Layout of the folder (`<data_dir>/qdrant-edge/` by default):

- `lock`: an OS lock (`flock`) held by the owning process while the store is open, plus its pid;
- `<collection>/`: the Edge shard;
- `<collection>.json`: the embedder name and dimension that built the shard.

A second process that opened the shard while it is in use was seen to break the owner's next flush,
so the lock is taken *before* the shard is touched and a loser fails with `VectorStoreLocked`.
`optimize()` is never called (it took 19 minutes at 100k points); the shard stays in its appendable
segments, where filtered search uses the payload indexes. qdrant_edge is imported on construction.

Points hold a named dense vector and a sparse lexical one (IDF modifier); a hybrid query takes the same steps
as the server engine (the two candidate searches in one batch, each side's missing scores looked up, the
formula over exact scores), or Edge's own prefetch and weighted RRF, so both engines rank alike (up to float32
rounding at near-ties).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aiteacher.vectors.base import (
    DENSE_VECTOR,
    INDEXED_KEYS,
    LEXICAL_VECTOR,
    PAGE_FIELDS,
    TENANT_KEY,
    CollectionRecord,
    Filters,
    Fusion,
    SearchHit,
    VectorPoint,
    VectorStoreError,
    VectorStoreLocked,
    check_limit,
    check_query,
    check_record,
    check_vector,
    filter_conditions,
    fuse_formula,
    missing_scores,
    page_key,
    stored_payload,
)
from aiteacher.vectors.lexical import SparseVector

LOCK_FILE = "lock"
_UPSERT_BATCH = 512
_open_roots: set[Path] = set()
_open_roots_lock = threading.Lock()


class EdgeStore:
    """`VectorStore` on a Qdrant Edge shard under `root`. Thread-safe within the owning process.

    Writes (upsert, delete, collection setup) are serialized and each ends with a flush, so what
    returned survives a restart; searches and counts run concurrently with them. `close()` waits for
    in-flight reads, flushes, closes the shard and releases the folder lock.
    """

    def __init__(self, root: Path | str, *, collection: str = "curriculum") -> None:
        if not collection or "/" in collection or collection.startswith(".") or collection == LOCK_FILE:
            raise ValueError(f"invalid collection name {collection!r}")
        import qdrant_edge

        self._edge = qdrant_edge
        self.root = Path(root).resolve()
        self.collection = collection
        self.shard_path = self.root / collection
        self.record_path = self.root / f"{collection}.json"
        self._where = f"{collection!r} in {self.root}"
        self._write_lock = threading.RLock()
        self._state = threading.Condition()
        self._readers = 0
        self._closed = False
        self._shard: Any = None
        self._record: CollectionRecord | None = None
        self._lock_fd = _acquire_folder_lock(self.root)
        try:
            self._record = self._read_record()
            if self._record is not None and _has_shard(self.shard_path):
                self._shard = self._load_shard(self._record)
        except BaseException:
            _release_folder_lock(self.root, self._lock_fd)
            raise

    # --- VectorStore ---------------------------------------------------------------------------
    def ensure_collection(self, embedder_name: str, dimension: int) -> None:
        wanted = CollectionRecord(embedder=embedder_name, dimension=int(dimension))
        if wanted.dimension < 1:
            raise ValueError("dimension must be positive")
        with self._write_lock:
            self._check_open()
            if self._record is not None:
                check_record(self._where, self._record, wanted)
            elif _has_shard(self.shard_path):
                raise VectorStoreError(
                    f"vector shard {self._where} exists without its record {self.record_path.name}; "
                    "it was not built by AI-Teacher: move it away"
                )
            else:
                # The record goes first: a crash before the shard exists leaves a record and no shard,
                # which the next call completes; never a shard nobody can vouch for.
                self._write_record(wanted)
                self._record = wanted
            if self._shard is None:
                self._shard = self._load_shard(wanted) if _has_shard(self.shard_path) else self._create_shard(wanted)

    def upsert(self, points: list[VectorPoint]) -> None:
        if not points:
            return
        with self._write_lock:
            shard = self._writable_shard()
            dimension = self._record.dimension if self._record else None
            edge_points = [
                self._edge.Point(point.id, self._vectors(point, dimension), stored_payload(point.payload))
                for point in points
            ]
            for start in range(0, len(edge_points), _UPSERT_BATCH):
                shard.update(self._edge.UpdateOperation.upsert_points(edge_points[start : start + _UPSERT_BATCH]))
            shard.flush()

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        lexical: SparseVector | None = None,
        filters: Filters | None = None,
        limit: int = 10,
        fusion: Fusion | None = None,
    ) -> list[SearchHit]:
        check_query(vector, lexical)
        edge_filter = self._filter(filters)
        check_limit(limit)
        edge = self._edge
        dense = None if vector is None else check_vector(vector, self._record.dimension if self._record else None)
        sparse = edge.SparseVector(lexical.indices, lexical.values) if lexical else None
        if dense is None and sparse is None:
            return []
        if dense is not None and sparse is not None and (fusion or Fusion()).method == "formula":
            with self._reading() as shard:
                return (
                    []
                    if shard is None
                    else self._formula_hybrid(shard, dense, sparse, edge_filter, limit, fusion or Fusion())
                )
        if dense is not None and sparse is not None:
            fusion = fusion or Fusion()
            candidates = fusion.candidates(limit)
            request = edge.QueryRequest(
                limit=limit,
                prefetches=[
                    edge.Prefetch(
                        limit=candidates, query=edge.Query.Nearest(dense, using=DENSE_VECTOR), filter=edge_filter
                    ),
                    edge.Prefetch(
                        limit=candidates, query=edge.Query.Nearest(sparse, using=LEXICAL_VECTOR), filter=edge_filter
                    ),
                ],
                query=self._fusion_query(fusion),
                filter=edge_filter,
                with_payload=True,
            )
        else:
            request = edge.QueryRequest(
                limit=limit,
                query=edge.Query.Nearest(
                    dense if dense is not None else sparse, using=DENSE_VECTOR if dense is not None else LEXICAL_VECTOR
                ),
                filter=edge_filter,
                with_payload=True,
            )
        with self._reading() as shard:
            if shard is None:
                return []
            return _hits(shard.query(request))

    def delete_document(self, document_id: int | str) -> None:
        edge_filter = self._filter({"document_id": document_id})
        with self._write_lock:
            self._check_open()
            if self._shard is None:
                return
            self._shard.update(self._edge.UpdateOperation.delete_points_by_filter(edge_filter))
            self._shard.flush()

    def count(self, filters: Filters | None = None) -> int:
        edge_filter = self._filter(filters)
        with self._reading() as shard:
            if shard is None:
                return 0
            return int(shard.count(self._edge.CountRequest(exact=True, filter=edge_filter)))

    def drop_collection(self) -> None:
        import shutil

        with self._write_lock:
            with self._state:
                self._check_open()
                while self._readers:
                    self._state.wait()
                shard, self._shard = self._shard, None
            if shard is not None:
                shard.close()
            shutil.rmtree(self.shard_path, ignore_errors=True)
            self.record_path.unlink(missing_ok=True)
            self._record = None

    def close(self) -> None:
        with self._write_lock:
            with self._state:
                if self._closed:
                    return
                self._closed = True
                while self._readers:
                    self._state.wait()
            shard, self._shard = self._shard, None
            try:
                if shard is not None:
                    shard.flush()
                    shard.close()
            finally:
                _release_folder_lock(self.root, self._lock_fd)

    # --- internals -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._state:
            if self._closed:
                raise VectorStoreError(f"vector store {self._where} is closed")
            self._readers += 1
            shard = self._shard
        try:
            yield shard
        finally:
            with self._state:
                self._readers -= 1
                if not self._readers:
                    self._state.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise VectorStoreError(f"vector store {self._where} is closed")

    def _writable_shard(self) -> Any:
        self._check_open()
        if self._shard is None:
            raise VectorStoreError(f"vector collection {self._where} does not exist: call ensure_collection first")
        return self._shard

    def _config(self, record: CollectionRecord) -> Any:
        edge = self._edge
        return edge.EdgeConfig(
            vectors={DENSE_VECTOR: edge.EdgeVectorParams(size=record.dimension, distance=edge.Distance.Cosine)},
            sparse_vectors={LEXICAL_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
            # One search thread: the shard keeps one appendable segment, so a pool has nothing to run in
            # parallel, and handing each search to it cost 0.1-0.2 ms (docs/benchmarks.md).
            max_search_threads=1,
        )

    def _vectors(self, point: VectorPoint, dimension: int | None) -> dict[str, Any]:
        vectors: dict[str, Any] = {DENSE_VECTOR: check_vector(point.vector, dimension)}
        lexical = point.lexical_vector()
        if lexical:
            vectors[LEXICAL_VECTOR] = self._edge.SparseVector(lexical.indices, lexical.values)
        return vectors

    def _formula_hybrid(
        self, shard: Any, dense: list[float], sparse: Any, edge_filter: Any, limit: int, fusion: Fusion
    ) -> list[SearchHit]:
        """One batch of the two candidate searches, a second batch scoring each side's missing candidates
        exactly (a filter on their ids; none when `missing_scores` says the score is known), `fuse_formula`,
        then the winners' payloads in one `retrieve`: the server engine's steps. Edge's `Formula` query over
        two prefetches restricted to the candidates ranks alike but scores every candidate on both sides
        again (0.09 ms slower, docs/benchmarks.md), and its nested prefetch of the full searches runs each
        branch again (9x slower)."""
        edge = self._edge
        dense_query = edge.Query.Nearest(dense, using=DENSE_VECTOR)
        lexical_query = edge.Query.Nearest(sparse, using=LEXICAL_VECTOR)
        lexical_limit = fusion.candidates(limit)
        # With `confidence_by_page` the candidates carry their (document, page), nothing else of the payload.
        fields = edge.PayloadSelector.Include(list(PAGE_FIELDS)) if fusion.reads_pages else False
        dense_hits, lexical_hits = shard.query_batch(
            edge.QueryBatchRequest(
                [
                    edge.QueryRequest(
                        limit=fusion.dense_candidates(limit), query=dense_query, filter=edge_filter, with_payload=fields
                    ),
                    edge.QueryRequest(
                        limit=lexical_limit, query=lexical_query, filter=edge_filter, with_payload=fields
                    ),
                ]
            )
        )
        cosine = {point.id: point.score for point in dense_hits}
        bm25 = {point.id: point.score for point in lexical_hits}
        pages = (
            {point.id: page_key(point.id, point.payload) for point in (*dense_hits, *lexical_hits)}
            if fusion.reads_pages
            else None
        )
        requests, targets = [], []
        for missing, query, target in zip(
            missing_scores(cosine, bm25, lexical_limit), (dense_query, lexical_query), (cosine, bm25), strict=True
        ):
            if missing:
                requests.append(
                    edge.QueryRequest(
                        limit=len(missing),
                        query=query,
                        with_payload=False,
                        filter=edge.Filter(must=[edge.HasIdCondition(missing)]),
                    )
                )
                targets.append(target)
        if requests:
            for target, hits in zip(targets, shard.query_batch(edge.QueryBatchRequest(requests)), strict=True):
                target.update((point.id, point.score) for point in hits)
        return _with_payloads(shard, fuse_formula(cosine, bm25, fusion, limit, pages))

    def _fusion_query(self, fusion: Fusion) -> Any:
        return self._edge.Fusion.Rrf(k=fusion.rrf_k, weights=[fusion.dense_weight, 1 - fusion.dense_weight])

    def _create_shard(self, record: CollectionRecord) -> Any:
        shard = self._edge.EdgeShard.create(str(self.shard_path), self._config(record))
        self._ensure_indexes(shard)
        return shard

    def _load_shard(self, record: CollectionRecord) -> Any:
        try:
            # Passing the config makes Edge check the stored vectors against the record.
            shard = self._edge.EdgeShard.load(str(self.shard_path), self._config(record))
        except Exception as exc:
            raise VectorStoreError(
                f"cannot open vector shard {self._where} as {record.embedder} ({record.dimension}-d): {exc}"
            ) from exc
        self._ensure_indexes(shard)
        return shard

    def _ensure_indexes(self, shard: Any) -> None:
        edge = self._edge
        existing = set(shard.info().payload_schema.keys())
        created = False
        for key in INDEXED_KEYS:
            if key in existing:
                continue
            schema = edge.KeywordIndexParams(is_tenant=True) if key == TENANT_KEY else edge.PayloadSchemaType.Keyword
            shard.update(edge.UpdateOperation.create_field_index(key, schema))
            created = True
        if created:
            shard.flush()

    def _read_record(self) -> CollectionRecord | None:
        try:
            data = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise VectorStoreError(f"cannot read {self.record_path}: {exc}") from exc
        record = CollectionRecord.from_mapping(data if isinstance(data, dict) else None)
        if record is None:
            raise VectorStoreError(f"{self.record_path} does not name an embedder and a dimension")
        return record

    def _write_record(self, record: CollectionRecord) -> None:
        temporary = self.record_path.with_name(self.record_path.name + ".tmp")
        with temporary.open("w") as handle:
            json.dump({**record.as_dict(), "distance": "cosine"}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.record_path)

    def _filter(self, filters: Filters | None) -> Any:
        conditions = filter_conditions(filters)
        if not conditions:
            return None
        edge = self._edge
        return edge.Filter(must=[edge.FieldCondition(key, match=edge.MatchValue(value)) for key, value in conditions])


def _hits(points: Any) -> list[SearchHit]:
    return [SearchHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]


def _with_payloads(shard: Any, ranked: list[tuple[Any, float]]) -> list[SearchHit]:
    """Hits for `(point id, score)` in this order, their payloads read in one `retrieve`."""
    payloads = {
        record.id: record.payload for record in shard.retrieve([point_id for point_id, _ in ranked], True, False)
    }
    return [
        SearchHit(id=str(point_id), score=score, payload=dict(payloads.get(point_id) or {}))
        for point_id, score in ranked
    ]


def _has_shard(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _acquire_folder_lock(root: Path) -> int:
    """Take the folder's exclusive lock for this process, or raise `VectorStoreLocked` naming the holder."""
    with _open_roots_lock:
        if root in _open_roots:
            raise VectorStoreLocked(
                f"the embedded vector store at {root} is already open in this process (pid {os.getpid()}); "
                "share one store (aiteacher.vectors.get_vector_store()) instead of opening it twice"
            )
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise VectorStoreLocked(
                f"the embedded vector store at {root} is in use by another process (pid {holder}); "
                "stop it or set QDRANT_URL"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _open_roots.add(root)
        return fd


def _release_folder_lock(root: Path, fd: int) -> None:
    with _open_roots_lock:
        _open_roots.discard(root)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
