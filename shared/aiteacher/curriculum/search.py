"""Tenant-scoped hybrid search (dense + lexical) of course material. The tenant filter comes from the
caller's stored profile, never from the request: students see their faculty and semester, academics their
faculty, admins anything."""

from __future__ import annotations

import contextvars
import hashlib
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, computed_field
from sqlalchemy.orm import Session

from aiteacher.access import SearchScope, search_scope
from aiteacher.access import caller_scope as access_caller_scope
from aiteacher.security.tokens import Claims

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from aiteacher.llm import Passage

Scope = SearchScope  # the tenant filter is the access policy's


class SearchHit(BaseModel):
    """One search result: a page's best chunk (what `search` returns, caches and the tutor and exams read)."""

    document_id: str
    chunk_id: str
    title: str = ""
    course: str | None = ""
    page: int = 0
    text: str = ""
    score: float = 0.0
    unit: str = "page"
    ocr: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def page_url(self) -> str:
        return page_url(self.document_id, self.page)

    @classmethod
    def of(cls, hit: Any, title: str) -> SearchHit:
        """From a vector-store hit (its payload is the chunk's)."""
        payload = hit.payload
        return cls(
            document_id=str(payload["document_id"]),
            chunk_id=str(hit.id),
            title=title,
            course=payload.get("course", ""),
            page=int(payload.get("page") or 0),
            text=payload.get("text", ""),
            score=round(float(hit.score), 4),
            unit=payload.get("unit", "page"),
            ocr=bool(payload.get("ocr", False)),
        )

    def passage(self) -> Passage:
        """The hit as the LLM layer reads it."""
        from aiteacher.llm import Passage

        return Passage(
            chunk_id=self.chunk_id,
            document_id=self.document_id,
            title=self.title,
            page=self.page,
            text=self.text,
            score=self.score,
            course=self.course,
            unit=self.unit,
            ocr=self.ocr,
        )


def caller_scope(
    session: Session,
    caller: Claims,
    *,
    course: str | None = None,
    semester_id: int | None = None,
    faculty_id: int | None = None,
) -> Scope:
    return search_scope(
        access_caller_scope(caller, session), course=course, semester_id=semester_id, faculty_id=faculty_id
    )


def _version_key(scope: Scope) -> str:
    """The counter any document change in the scope's faculty bumps (so cached searches of it expire)."""
    return f"search-ver:f:{scope.faculty_id}" if scope.faculty_id is not None else "search-ver:all"


def _cache_key(scope: Scope, query: str, top_k: int, version: bytes | str | None) -> str:
    normalized = " ".join(query.lower().split())
    digest = hashlib.sha256(json.dumps([normalized, top_k, scope.filters()], sort_keys=True).encode()).hexdigest()
    version_text = version.decode() if isinstance(version, bytes) else str(version or "0")
    return f"search:{scope.faculty_id}:{version_text}:{digest}"


#: Candidates fetched per requested result, so that collapsing to one result per page still fills top_k.
CANDIDATES_PER_RESULT = 4


def page_url(document_id: str, page: int) -> str:
    """Where a student opens the cited page (the `document` function's page route, REST path)."""
    return f"/documents/{document_id}/pages/{page}"


def collapse_pages(hits: list[Any], top_k: int) -> list[Any]:
    """One hit per (document, page), the best-scoring chunk of each, best first; at most top_k."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for hit in hits:
        key = (str(hit.payload.get("document_id")), int(hit.payload.get("page") or 0))
        if key in seen:
            continue
        seen.add(key)
        kept.append(hit)
        if len(kept) == top_k:
            break
    return kept


def ready_titles(document_ids: set[str]) -> dict[str, str]:
    """The current title of each of these documents that is `ready` (ingesting, failed, deleted ones: absent)."""
    if not document_ids:
        return {}
    from aiteacher.curriculum import repository
    from aiteacher.db import transaction

    with transaction(read_only=True) as session:
        return repository.ready_titles(session, sorted(document_ids))


def retrieve(scope: Scope, query: str, top_k: int, *, mode: str = "hybrid") -> list[SearchHit]:
    """Hybrid (dense + BM25, fused in the vector engine) search within the scope, one result per page, only
    chunks of ready documents, titles as `/documents` shows them (no cache)."""
    from aiteacher.embeddings import get_embedder
    from aiteacher.vectors import get_vector_store
    from aiteacher.vectors.lexical import query_vector

    embedder = get_embedder()
    store = get_vector_store()
    store.ensure_collection(embedder.name, embedder.dimension)
    dense = embedder.embed_query(query) if mode in ("hybrid", "dense") else None
    lexical = query_vector(query) if mode in ("hybrid", "lexical") else None
    hits = store.search(dense, lexical=lexical, filters=scope.filters(), limit=min(1000, top_k * CANDIDATES_PER_RESULT))
    # The database, not the vector payload, says which documents are searchable: a document being
    # (re-)ingested, failed, deleted or folded into a duplicate never shows.
    titles = ready_titles({str(hit.payload.get("document_id")) for hit in hits})
    hits = collapse_pages([hit for hit in hits if str(hit.payload.get("document_id")) in titles], top_k)
    return [SearchHit.of(hit, titles[str(hit.payload["document_id"])]) for hit in hits]


def search(scope: Scope, query: str, top_k: int) -> tuple[list[SearchHit], bool]:
    """(results, served from cache?). Cached per tenant version: any document change bumps it."""
    from aiteacher.cache import cached_json, get_redis
    from aiteacher.config import get_settings

    return cached_json(
        lambda: _cache_key(scope, query, top_k, get_redis().get(_version_key(scope))),
        get_settings().search_cache_seconds,
        lambda: retrieve(scope, query, top_k),
        list[SearchHit],
    )


async def search_async(
    scope: Scope, query: str, top_k: int, executor: Executor | None = None
) -> tuple[list[SearchHit], bool]:
    """`search` from the event loop: the cache is read and written on the loop's asyncio client, and only a
    miss runs `retrieve` (embedding, vector search, titles) on `executor`."""
    import asyncio

    from aiteacher.cache import cached_json_async, get_async_redis
    from aiteacher.config import get_settings

    async def key() -> str:
        return _cache_key(scope, query, top_k, await get_async_redis().get(_version_key(scope)))

    from aiteacher.scheduling import SHORT_WAIT, off_cpu

    loop = asyncio.get_running_loop()

    async def compute() -> list[SearchHit]:
        async with off_cpu(SHORT_WAIT):
            return await loop.run_in_executor(executor, contextvars.copy_context().run, retrieve, scope, query, top_k)

    return await cached_json_async(key, get_settings().search_cache_seconds, compute, list[SearchHit])
