"""Tenant-scoped hybrid search (dense + lexical) of course material. The tenant filter comes from the
caller's stored profile, never from the request: students see their faculty and semester, academics their
faculty, admins anything."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from aiteacher.access import SearchScope, search_scope
from aiteacher.access import caller_scope as access_caller_scope
from aiteacher.security.tokens import Claims

Scope = SearchScope  # the tenant filter is the access policy's


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


def _cache_key(scope: Scope, query: str, top_k: int) -> str:
    from aiteacher.cache import get_redis

    version_key = f"search-ver:f:{scope.faculty_id}" if scope.faculty_id is not None else "search-ver:all"
    version = get_redis().get(version_key) or b"0"
    normalized = " ".join(query.lower().split())
    digest = hashlib.sha256(json.dumps([normalized, top_k, scope.filters()], sort_keys=True).encode()).hexdigest()
    version_text = version.decode() if isinstance(version, bytes) else str(version)
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
    from sqlalchemy import select

    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    with transaction(read_only=True) as session:
        rows = session.execute(
            select(Document.id, Document.title).where(Document.id.in_(sorted(document_ids)), Document.status == "ready")
        )
        return {str(row.id): row.title for row in rows}


def retrieve(scope: Scope, query: str, top_k: int, *, mode: str = "hybrid") -> list[dict[str, Any]]:
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
    results = []
    for hit in hits:
        document_id, page = str(hit.payload["document_id"]), int(hit.payload.get("page") or 0)
        results.append(
            {
                "document_id": document_id,
                "title": titles[document_id],
                "course": hit.payload.get("course", ""),
                "page": page,
                "text": hit.payload.get("text", ""),
                "score": round(float(hit.score), 4),
                "chunk_id": str(hit.id),
                "page_url": page_url(document_id, page),
                "unit": hit.payload.get("unit", "page"),
                "ocr": bool(hit.payload.get("ocr", False)),
            }
        )
    return results


def search(scope: Scope, query: str, top_k: int) -> tuple[list[dict[str, Any]], bool]:
    """(results, served from cache?). Cached per tenant version: any document change bumps it."""
    from redis.exceptions import RedisError

    from aiteacher.cache import get_redis
    from aiteacher.config import get_settings

    ttl = get_settings().search_cache_seconds
    key: str | None = None
    if ttl:
        try:
            key = _cache_key(scope, query, top_k)
            cached = get_redis().get(key)
            if cached is not None:
                return json.loads(cached), True
        except RedisError:
            key = None
    results = retrieve(scope, query, top_k)
    if key:
        try:
            get_redis().set(key, json.dumps(results, separators=(",", ":")), ex=ttl)
        except RedisError:
            pass
    return results, False
