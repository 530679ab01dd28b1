"""Vector storage of curriculum chunks: one `VectorStore` interface, two Qdrant engines.

- `QdrantServerStore`: a Qdrant server through qdrant-client (`QDRANT_URL`; `:memory:` for tests).
- `EdgeStore`: Qdrant Edge in-process, on disk under `<data_dir>/qdrant-edge/` (the default),
  owned by one process at a time.

`get_vector_store()` builds the configured one once per process. Callers then call
`ensure_collection(embedder.name, embedder.dimension)` once (repeat calls are cheap) before use.
Importing this package loads neither qdrant_client nor qdrant_edge.
"""

from __future__ import annotations

from aiteacher.registry import client
from aiteacher.vectors.base import (
    FILTER_KEYS,
    TENANT_KEY,
    CollectionRecord,
    Filters,
    Fusion,
    SearchHit,
    VectorPoint,
    VectorStore,
    VectorStoreError,
    VectorStoreLocked,
    VectorStoreMismatch,
    chunk_point_id,
)
from aiteacher.vectors.edge import EdgeStore
from aiteacher.vectors.server import QdrantServerStore

__all__ = [
    "FILTER_KEYS",
    "TENANT_KEY",
    "CollectionRecord",
    "EdgeStore",
    "Filters",
    "Fusion",
    "QdrantServerStore",
    "SearchHit",
    "VectorPoint",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreLocked",
    "VectorStoreMismatch",
    "chunk_point_id",
    "get_vector_store",
]


def _close(store: VectorStore) -> None:
    store.close()


@client(close=_close)
def get_vector_store() -> VectorStore:
    """`QdrantServerStore` when `QDRANT_URL` is set (`:memory:` allowed), else `EdgeStore` under `DATA_DIR`."""
    from aiteacher.config import get_settings

    settings = get_settings()
    if settings.qdrant_url:
        return QdrantServerStore(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            collection=settings.qdrant_collection,
            timeout_seconds=settings.qdrant_timeout_seconds,
        )
    return EdgeStore(settings.data_dir / "qdrant-edge", collection=settings.qdrant_collection)
