"""One tutor turn: moderation -> integrity -> retrieval -> relevance -> hint ladder -> answer (cached)
-> stored messages -> periodic learning-state summary. Plain functions over a session."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.config import get_settings
from aiteacher.db import after_commit
from aiteacher.db.models import ChatMessage, ChatSession, new_id
from aiteacher.errors import NotFound, ValidationFailed
from aiteacher.security.tokens import Claims
from aiteacher.tutor import guardrails

HISTORY_TURNS = 6
SUMMARY_JOB = "aiteacher.tutor.jobs.summarize_session"


@dataclass
class TurnResult:
    session_id: str
    answer: str
    citations: list[dict[str, Any]]
    refused: bool
    hint_level: int | None = None
    reason: str | None = None
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def open_session(session: Session, caller: Claims, session_id: str | None, course: str | None) -> ChatSession:
    if session_id:
        chat = session.get(ChatSession, session_id)
        if chat is None or chat.user_id != caller.sub or chat.deleted_at is not None:
            raise NotFound("No such chat session")
        return chat
    chat = ChatSession(id=new_id(), user_id=caller.sub, course=course, hint_level=0, focus_chunks=[],
                       learning_state={}, learning_state_version=0, message_count=0)
    session.add(chat)
    session.flush()
    return chat


def chat_turn(session: Session, caller: Claims, message: str, session_id: str | None,
              course: str | None) -> TurnResult:
    from aiteacher.curriculum.search import caller_scope
    from aiteacher.llm import get_llm

    settings = get_settings()
    message = message.strip()
    if not message:
        raise ValidationFailed("The message is empty")
    if len(message) > settings.chat_max_message_chars:
        raise ValidationFailed(f"The message is longer than {settings.chat_max_message_chars} characters")
    chat = open_session(session, caller, session_id, course)
    scope = caller_scope(session, caller, course=course or chat.course)
    llm = get_llm()

    # Moderation (a remote call with OpenAI) runs while we retrieve; its verdict is still applied first.
    moderation_call = _background().submit(llm.moderate, message)
    integrity_violation = guardrails.is_integrity_violation(message)
    passages = [] if integrity_violation else _retrieve(scope, message, settings.tutor_top_k,
                                                         settings.tutor_min_score)
    moderation = moderation_call.result()
    if moderation.flagged:
        audit("ai.chat", "flagged", actor=caller.sub, target=chat.id, categories=moderation.categories)
        from aiteacher.notifications import notify_flagged_message

        faculty_id = scope.faculty_id
        after_commit(session, lambda: notify_flagged_message(faculty_id, chat.id, moderation.categories))
        return _record(session, chat, message, TurnResult(chat.id, guardrails.FLAGGED_REPLY, [], True,
                                                         reason="flagged"), flagged=True)
    if integrity_violation:
        audit("ai.chat", "refused", actor=caller.sub, target=chat.id, reason="integrity")
        return _record(session, chat, message, TurnResult(chat.id, guardrails.INTEGRITY_REPLY, [], True,
                                                         reason="integrity"))
    if not passages:
        audit("ai.chat", "refused", actor=caller.sub, target=chat.id, reason="not_grounded")
        return _record(session, chat, message, TurnResult(chat.id, guardrails.NOT_IN_MATERIAL_REPLY, [], True,
                                                         reason="not_in_material"))

    hint_level = _advance_hint_ladder(chat, [passages[0].chunk_id])
    cache_key = _answer_cache_key(llm.name, scope, message, passages, chat.learning_state_version, hint_level)
    cached = _cache_get(cache_key) if settings.chat_cache_seconds else None
    if cached is not None:
        result = TurnResult(chat.id, cached["answer"], cached["citations"], False, hint_level, cached=True)
    else:
        from aiteacher.llm import ChatTurn, LearningState

        history = [ChatTurn(m.role, m.content) for m in _recent_messages(session, chat.id, HISTORY_TURNS)]
        state = LearningState(**chat.learning_state) if chat.learning_state else None
        reply = llm.tutor_answer(message, passages, history=history, learning_state=state, hint_level=hint_level)
        citations = _citations(reply.used_passages or passages[:1])
        result = TurnResult(chat.id, reply.answer, citations, False, hint_level)
        _cache_set(cache_key, {"answer": reply.answer, "citations": citations}, settings.chat_cache_seconds)
    audit("ai.chat", "answered", actor=caller.sub, target=chat.id, hint_level=hint_level, cached=result.cached,
          citations=len(result.citations))
    return _record(session, chat, message, result)


@lru_cache(maxsize=1)
def _background() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="tutor")


def _retrieve(scope: Any, message: str, top_k: int, min_score: float) -> list[Any]:
    from aiteacher.curriculum.search import search
    from aiteacher.llm import Passage

    results, _ = search(scope, message, top_k)
    return [Passage(chunk_id=r["chunk_id"], document_id=r["document_id"], title=r["title"], page=r["page"],
                    text=r["text"], score=r["score"], course=r["course"])
            for r in results if r["score"] >= min_score]


def _advance_hint_ladder(chat: ChatSession, focus: list[str]) -> int:
    """Another attempt at the same material (the same best-matching passage) climbs one rung (hint ->
    stronger hint -> worked explanation); a new topic starts again at a hint."""
    same_topic = bool(set(focus) & set(chat.focus_chunks or []))
    chat.hint_level = min(chat.hint_level + 1, 2) if same_topic else 0
    chat.focus_chunks = focus
    return chat.hint_level


def _citations(passages: list[Any]) -> list[dict[str, Any]]:
    seen: set[tuple[str, int]] = set()
    citations = []
    for passage in passages:
        key = (passage.document_id, passage.page)
        if key not in seen:
            seen.add(key)
            from aiteacher.curriculum.search import page_url

            citations.append({"document_id": passage.document_id, "title": passage.title, "page": passage.page,
                              "page_url": page_url(passage.document_id, passage.page)})
    return citations


def _answer_cache_key(provider: str, scope: Any, message: str, passages: list[Any], state_version: int,
                      hint_level: int) -> str:
    material = {"provider": provider, "scope": scope.filters(), "q": guardrails.normalize_question(message),
                "chunks": sorted(p.chunk_id for p in passages), "state": state_version, "hint": hint_level}
    return "tutor:" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _cache_get(key: str) -> dict[str, Any] | None:
    from redis.exceptions import RedisError

    from aiteacher.cache import get_redis

    try:
        raw = get_redis().get(key)
    except RedisError:
        return None
    return json.loads(raw) if raw else None


def _cache_set(key: str, value: dict[str, Any], ttl: int) -> None:
    from redis.exceptions import RedisError

    from aiteacher.cache import get_redis

    if ttl <= 0:
        return
    try:
        get_redis().set(key, json.dumps(value), ex=ttl)
    except RedisError:
        pass


def _recent_messages(session: Session, chat_id: str, limit: int) -> list[ChatMessage]:
    rows = session.scalars(select(ChatMessage).where(ChatMessage.session_id == chat_id)
                           .order_by(ChatMessage.id.desc()).limit(limit)).all()
    return list(reversed(rows))


def _record(session: Session, chat: ChatSession, message: str, result: TurnResult, *,
            flagged: bool = False) -> TurnResult:
    session.add(ChatMessage(session_id=chat.id, role="user", content=message, citations=[], refused=False,
                            flagged=flagged))
    session.add(ChatMessage(session_id=chat.id, role="assistant", content=result.answer, citations=result.citations,
                            refused=result.refused, hint_level=result.hint_level))
    before = chat.message_count
    chat.message_count = before + 2
    chat.updated_at = datetime.now(UTC)
    session.flush()
    every = get_settings().summary_every_messages
    if chat.message_count // every > before // every:
        from aiteacher.queue import enqueue

        chat_id, count = chat.id, chat.message_count
        after_commit(session, lambda: enqueue("summaries", SUMMARY_JOB, chat_id, job_id=f"summary-{chat_id}-{count}",
                                              timeout=120))
    return result


def session_view(session: Session, caller: Claims, session_id: str) -> dict[str, Any]:
    chat = open_session(session, caller, session_id, None)
    messages = session.scalars(select(ChatMessage).where(ChatMessage.session_id == chat.id)
                               .order_by(ChatMessage.id)).all()
    return {
        "id": chat.id, "course": chat.course, "hint_level": chat.hint_level,
        "learning_state": {**(chat.learning_state or {}), "version": chat.learning_state_version},
        "created_at": chat.created_at.isoformat(), "updated_at": chat.updated_at.isoformat(),
        "messages": [{"role": m.role, "content": m.content, "citations": m.citations, "refused": m.refused,
                      "created_at": m.created_at.isoformat()} for m in messages],
    }


def delete_session(session: Session, caller: Claims, session_id: str) -> None:
    chat = open_session(session, caller, session_id, None)
    chat.deleted_at = datetime.now(UTC)
    audit("ai.chat_session.delete", "ok", actor=caller.sub, target=chat.id)
