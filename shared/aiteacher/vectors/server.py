"""Qdrant server (or qdrant-client's in-process `:memory:` mode for tests) through `qdrant-client`.

One collection with two named vectors per point: `dense` (cosine) and `lexical` (sparse BM25 weights, IDF
modifier); hybrid queries prefetch both and fuse them server-side. A keyword index on `faculty_id` with
`is_tenant=True` and keyword indexes on the other filter fields. The embedder that built the collection is
recorded in the collection's own metadata (Qdrant server 1.16 or later). qdrant_client is imported by the
constructor, never at module import.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Sequence
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

_UPSERT_BATCH = 256


class QdrantServerStore:
    """`VectorStore` on a Qdrant server. Thread-safe: the HTTP client is; local mode is not, so there
    every call is serialized."""

    def __init__(
        self,
        *,
        url: str = "",
        api_key: str = "",
        location: str | None = None,
        collection: str = "curriculum",
        timeout_seconds: int = 10,
    ) -> None:
        if not collection:
            raise ValueError("collection name is empty")
        from qdrant_client import QdrantClient, models

        self._models = models
        self.collection = collection
        if location is None and url == ":memory:":
            location = url
        # Local mode has no server-side payload indexes (it filters in Python) and warns about them.
        self._local = location is not None
        if location is not None:
            self._client = QdrantClient(location=location)
            self._where = f"{collection!r} (qdrant-client local mode {location})"
        elif url:
            # No version probe on construction: a serverless function should not pay a round trip to start.
            self._client = QdrantClient(
                url=url, api_key=api_key or None, timeout=timeout_seconds, check_compatibility=False
            )
            self._where = f"{collection!r} at {url}"
        else:
            raise ValueError("QdrantServerStore needs a url or a location")
        self._record: CollectionRecord | None = None
        self._exists = False
        self._lock = threading.Lock()
        self._calls: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self._local else contextlib.nullcontext()
        )

    # --- VectorStore ---------------------------------------------------------------------------
    def ensure_collection(self, embedder_name: str, dimension: int) -> None:
        wanted = CollectionRecord(embedder=embedder_name, dimension=int(dimension))
        if wanted.dimension < 1:
            raise ValueError("dimension must be positive")
        with self._lock, self._calls:
            if self._record == wanted:
                return
            models = self._models
            created = False
            if not self._client.collection_exists(self.collection):
                try:
                    created = self._client.create_collection(
                        self.collection,
                        vectors_config={
                            DENSE_VECTOR: models.VectorParams(size=wanted.dimension, distance=models.Distance.COSINE)
                        },
                        sparse_vectors_config={LEXICAL_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                        metadata=wanted.as_dict(),
                    )
                except Exception:
                    # Another process may have created it in between; anything else is a real failure.
                    if not self._client.collection_exists(self.collection):
                        raise
            info = self._client.get_collection(self.collection)
            recorded = CollectionRecord.from_mapping(info.config.metadata)
            if created and recorded is None:
                raise VectorStoreError(
                    f"the Qdrant server dropped the metadata of the new collection {self._where}: "
                    "collection metadata needs Qdrant 1.16 or later"
                )
            check_record(self._where, recorded, wanted)
            vectors = info.config.params.vectors
            dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
            size = getattr(dense, "size", None)
            if size != wanted.dimension:
                raise VectorStoreError(
                    f"vector collection {self._where} holds {size}-d vectors but records {wanted.dimension}-d"
                )
            self._ensure_indexes(set((info.payload_schema or {}).keys()))
            self._record = wanted
            self._exists = True

    def upsert(self, points: list[VectorPoint]) -> None:
        if not points:
            return
        dimension = self._record.dimension if self._record else None
        structs = [
            self._models.PointStruct(
                id=point.id, vector=self._vectors(point, dimension), payload=stored_payload(point.payload)
            )
            for point in points
        ]
        with self._calls:
            if not self._collection_exists():
                raise VectorStoreError(f"vector collection {self._where} does not exist: call ensure_collection first")
            for start in range(0, len(structs), _UPSERT_BATCH):
                self._client.upsert(self.collection, points=structs[start : start + _UPSERT_BATCH], wait=True)

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
        query_filter = self._filter(filters)
        check_limit(limit)
        dense = None if vector is None else check_vector(vector, self._record.dimension if self._record else None)
        models = self._models
        sparse = models.SparseVector(indices=lexical.indices, values=lexical.values) if lexical else None
        if dense is None and sparse is None:
            return []  # a lexical-only query without a single term matches nothing
        if dense is not None and sparse is not None and (fusion or Fusion()).method == "formula":
            with self._calls:
                if not self._collection_exists():
                    return []
                return self._formula_hybrid(dense, sparse, query_filter, limit, fusion or Fusion())
        arguments: dict[str, Any]
        if dense is not None and sparse is not None:
            fusion = fusion or Fusion()
            candidates = fusion.candidates(limit)
            arguments = {
                "prefetch": [
                    models.Prefetch(query=dense, using=DENSE_VECTOR, filter=query_filter, limit=candidates),
                    models.Prefetch(query=sparse, using=LEXICAL_VECTOR, filter=query_filter, limit=candidates),
                ],
                "query": models.RrfQuery(
                    rrf=models.Rrf(k=fusion.rrf_k, weights=[fusion.dense_weight, 1 - fusion.dense_weight])
                ),
            }
        elif dense is not None:
            arguments = {"query": dense, "using": DENSE_VECTOR}
        else:
            arguments = {"query": sparse, "using": LEXICAL_VECTOR}
        with self._calls:
            if not self._collection_exists():
                return []
            response = self._client.query_points(
                self.collection,
                query_filter=query_filter,
                limit=limit,
                with_payload=True,
                **arguments,
            )
        return [
            SearchHit(id=str(point.id), score=float(point.score), payload=dict(point.payload or {}))
            for point in response.points
        ]

    def delete_document(self, document_id: int | str) -> None:
        selector = self._models.FilterSelector(filter=self._filter({"document_id": document_id}))
        with self._calls:
            if self._collection_exists():
                self._client.delete(self.collection, points_selector=selector, wait=True)

    def count(self, filters: Filters | None = None) -> int:
        count_filter = self._filter(filters)
        with self._calls:
            if not self._collection_exists():
                return 0
            return int(self._client.count(self.collection, count_filter=count_filter, exact=True).count)

    def drop_collection(self) -> None:
        with self._lock, self._calls:
            if self._client.collection_exists(self.collection):
                self._client.delete_collection(self.collection)
            self._record, self._exists = None, False

    def close(self) -> None:
        with self._calls:
            self._client.close()

    # --- internals -----------------------------------------------------------------------------
    def _vectors(self, point: VectorPoint, dimension: int | None) -> dict[str, Any]:
        vectors: dict[str, Any] = {DENSE_VECTOR: check_vector(point.vector, dimension)}
        lexical = point.lexical_vector()
        if lexical:
            vectors[LEXICAL_VECTOR] = self._models.SparseVector(indices=lexical.indices, values=lexical.values)
        return vectors

    def _formula_hybrid(
        self, dense: list[float], sparse: Any, query_filter: Any, limit: int, fusion: Fusion
    ) -> list[SearchHit]:
        """Two candidate searches in one batch, a second batch scoring each side's missing candidates exactly
        (a `has_id` filter; none when `missing_scores` says the score is known), `fuse_formula`, then the
        winners' payloads: the same ranking as a nested prefetch with a formula query, without running every
        nested branch twice."""
        models = self._models
        candidates = fusion.candidates(limit)
        sides = ((dense, DENSE_VECTOR), (sparse, LEXICAL_VECTOR))
        # With `confidence_by_page` the candidates carry their (document, page), nothing else of the payload.
        fields = models.PayloadSelectorInclude(include=list(PAGE_FIELDS)) if fusion.reads_pages else False
        first = self._client.query_batch_points(
            self.collection,
            requests=[
                models.QueryRequest(
                    query=query, using=using, filter=query_filter, limit=side_limit, with_payload=fields
                )
                for (query, using), side_limit in zip(sides, (fusion.dense_candidates(limit), candidates), strict=True)
            ],
        )
        cosine = {point.id: float(point.score) for point in first[0].points}
        bm25 = {point.id: float(point.score) for point in first[1].points}
        pages = (
            {point.id: page_key(point.id, point.payload) for point in (*first[0].points, *first[1].points)}
            if fusion.reads_pages
            else None
        )
        requests, targets = [], []
        for (query, using), target, missing in zip(
            sides, (cosine, bm25), missing_scores(cosine, bm25, candidates), strict=True
        ):
            if missing:
                requests.append(
                    models.QueryRequest(
                        query=query,
                        using=using,
                        limit=len(missing),
                        with_payload=False,
                        filter=models.Filter(must=[models.HasIdCondition(has_id=sorted(missing, key=str))]),
                    )
                )
                targets.append(target)
        if requests:
            for target, response in zip(
                targets, self._client.query_batch_points(self.collection, requests=requests), strict=True
            ):
                target.update((point.id, float(point.score)) for point in response.points)
        best = fuse_formula(cosine, bm25, fusion, limit, pages)
        records = self._client.retrieve(self.collection, ids=[point_id for point_id, _ in best], with_payload=True)
        payloads = {record.id: record.payload for record in records}
        return [
            SearchHit(id=str(point_id), score=score, payload=dict(payloads.get(point_id) or {}))
            for point_id, score in best
        ]

    def _collection_exists(self) -> bool:
        if not self._exists:
            self._exists = bool(self._client.collection_exists(self.collection))
        return self._exists

    def _filter(self, filters: Filters | None) -> Any:
        conditions = filter_conditions(filters)
        if not conditions:
            return None
        models = self._models
        return models.Filter(
            must=[models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in conditions]
        )

    def _ensure_indexes(self, existing: set[str]) -> None:
        models = self._models
        for key in INDEXED_KEYS:
            if key in existing:
                continue
            schema = models.KeywordIndexParams(
                type=models.KeywordIndexType.KEYWORD, is_tenant=True if key == TENANT_KEY else None
            )
            with warnings.catch_warnings():
                if self._local:
                    warnings.simplefilter("ignore", UserWarning)
                self._client.create_payload_index(self.collection, key, field_schema=schema, wait=True)
