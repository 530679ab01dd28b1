"""Tenant-scoped semantic search. The tenant filter comes from the caller's stored profile, never
from the request: students see their faculty and semester, academics their faculty, admins anything."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from aiteacher.access import SearchScope, search_scope
from aiteacher.access import caller_scope as access_caller_scope
from aiteacher.security.tokens import Claims

Scope = SearchScope  # the tenant filter is the access policy's


def caller_scope(session: Session, caller: Claims, *, course: str | None = None, semester_id: int | None = None,
                 faculty_id: int | None = None) -> Scope:
    return search_scope(access_caller_scope(caller, session), course=course, semester_id=semester_id,
                        faculty_id=faculty_id)


def _cache_key(scope: Scope, query: str, top_k: int) -> str | None:
    from aiteacher.cache import get_redis

    version_key = f"search-ver:f:{scope.faculty_id}" if scope.faculty_id is not None else "search-ver:all"
    version = get_redis().get(version_key) or b"0"
    normalized = " ".join(query.lower().split())
    digest = hashlib.sha256(json.dumps([normalized, top_k, scope.filters()], sort_keys=True).encode()).hexdigest()
    return f"search:{scope.faculty_id}:{version.decode()}:{digest}"


def retrieve(scope: Scope, query: str, top_k: int) -> list[dict[str, Any]]:
    """Embed the query and search within the scope (no cache)."""
    from aiteacher.embeddings import get_embedder
    from aiteacher.vectors import get_vector_store

    embedder = get_embedder()
    store = get_vector_store()
    store.ensure_collection(embedder.name, embedder.dimension)
    hits = store.search(embedder.embed_query(query), filters=scope.filters(), limit=top_k)
    ready = _ready_documents({str(hit.payload["document_id"]) for hit in hits})
    hits = [hit for hit in hits if str(hit.payload["document_id"]) in ready]
    return [{"document_id": str(hit.payload["document_id"]), "title": hit.payload.get("title", ""),
             "course": hit.payload.get("course", ""), "page": int(hit.payload.get("page", 0)),
             "text": hit.payload.get("text", ""), "score": round(float(hit.score), 4),
             "chunk_id": str(hit.id), "unit": hit.payload.get("unit", "page"),
             "ocr": bool(hit.payload.get("ocr", False))} for hit in hits]


def _ready_documents(document_ids: set[str]) -> set[str]:
    """Of these documents, the ones that are `ready`: chunks of a document still being (re-)indexed, failed
    or deleted are never returned, whatever the vector store still holds."""
    if not document_ids:
        return set()
    from sqlalchemy import select

    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    with transaction(read_only=True) as session:
        return set(session.scalars(select(Document.id).where(Document.id.in_(document_ids),
                                                             Document.status == "ready")))


def search(scope: Scope, query: str, top_k: int) -> tuple[list[dict[str, Any]], bool]:
    """(results, served from cache?). Cached per tenant version: any document change bumps it."""
    from redis.exceptions import RedisError

    from aiteacher.cache import get_redis
    from aiteacher.config import get_settings

    ttl = get_settings().search_cache_seconds
    key = None
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
