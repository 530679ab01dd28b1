"""Tenant-scoped semantic search. The tenant filter comes from the caller's stored profile, never
from the request: students see their faculty and semester, academics their faculty, admins anything."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from aiteacher.errors import Conflict, Forbidden
from aiteacher.security.tokens import Claims


@dataclass(frozen=True)
class Scope:
    """What a caller may retrieve: exact-match filters on the vector payload."""

    faculty_id: int | None
    semester_id: int | None
    course: str | None

    def filters(self) -> dict[str, Any]:
        return {"faculty_id": self.faculty_id, "semester_id": self.semester_id, "course": self.course}


def caller_scope(session: Session, caller: Claims, *, course: str | None = None, semester_id: int | None = None,
                 faculty_id: int | None = None) -> Scope:
    from aiteacher.identity import profiles

    user = SimpleNamespace(**profiles.current(caller.sub, session))
    course = course.strip() if course and course.strip() else None
    if caller.role == "student":
        if user.faculty_id is None or user.semester_id is None:
            raise Conflict("Set your faculty and semester in your profile (PUT /me) to search course material",
                           code="profile_incomplete")
        if faculty_id not in (None, user.faculty_id) or semester_id not in (None, user.semester_id):
            raise Forbidden("Students search only their own faculty and semester")
        return Scope(user.faculty_id, user.semester_id, course)
    if caller.role == "academic":
        if user.faculty_id is None:
            raise Conflict("Set your faculty in your profile (PUT /me) to search course material",
                           code="profile_incomplete")
        if faculty_id not in (None, user.faculty_id):
            raise Forbidden("Academics search only their own faculty")
        return Scope(user.faculty_id, semester_id, course)
    return Scope(faculty_id, semester_id, course)


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
    return [{"document_id": str(hit.payload["document_id"]), "title": hit.payload.get("title", ""),
             "course": hit.payload.get("course", ""), "page": int(hit.payload.get("page", 0)),
             "text": hit.payload.get("text", ""), "score": round(float(hit.score), 4),
             "chunk_id": str(hit.id), "unit": hit.payload.get("unit", "page"),
             "ocr": bool(hit.payload.get("ocr", False))} for hit in hits]


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
