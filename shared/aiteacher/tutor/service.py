"""One tutor turn in three phases, so no pooled connection is held while the model thinks:

1. `prepare_turn` (sync, one short transaction): the session, its recent history, focus passages and
   learning state, and the caller's tenant scope;
2. `answer_turn` / `stream_turn` (async, no connection checked out): moderation in parallel with retrieval
   (in a bounded executor), integrity, the grounding gate, follow-ups, the hint ladder, the per-session
   answer cache and the model call;
3. `record_turn` (sync, one short transaction): the two messages, the session's ladder and focus, and the
   periodic learning-state summary job.

Plain functions; the chat function runs phases 1 and 3 on a small transaction executor (`in_transaction_pool`).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.config import get_settings
from aiteacher.db import after_commit, transaction
from aiteacher.db.models import ChatMessage, ChatSession, new_id
from aiteacher.enums import HintLevel
from aiteacher.errors import AppError, NotFound, ValidationFailed
from aiteacher.security.tokens import Claims
from aiteacher.tutor import guardrails, repository
from aiteacher.tutor.repository import recent_messages as _recent_messages

T = TypeVar("T")

if TYPE_CHECKING:
    from aiteacher.curriculum.search import Scope, SearchHit
    from aiteacher.llm import ChatTurn, LearningState, Passage

HISTORY_TURNS = 6
TITLE_CHARS = 80
PREVIEW_CHARS = 160


@dataclass
class TurnResult:
    session_id: str
    answer: str
    citations: list[dict[str, Any]]
    refused: bool
    hint_level: int | None = None
    reason: str | None = None
    cached: bool = False
    flagged: bool = False
    categories: list[str] = field(default_factory=list)
    focus: list[dict[str, Any]] | None = None
    """The passages the answer used (None: keep the session's focus)."""


@dataclass
class TurnContext:
    """What phase 1 read: everything the turn needs, detached from any database session."""

    caller_id: str
    session_id: str
    is_new: bool
    course: str | None
    scope: Scope
    message: str
    hint_level: int
    focus: list[dict[str, Any]]
    history: list[ChatTurn]
    learning_state: LearningState | None
    state_version: int
    message_count: int


# --- phase 1: a short read --------------------------------------------------------------------------
def prepare_turn(caller: Claims, message: str, session_id: str | None, course: str | None) -> TurnContext:
    from aiteacher.curriculum.search import caller_scope
    from aiteacher.llm import ChatTurn, LearningState

    settings = get_settings()
    message = message.strip()
    if not message:
        raise ValidationFailed("The message is empty")
    if len(message) > settings.chat_max_message_chars:
        raise ValidationFailed(f"The message is longer than {settings.chat_max_message_chars} characters")
    with transaction() as session:  # the primary: a replica may not have the previous turn yet
        chat = _owned_session(session, caller, session_id) if session_id else None
        scope = caller_scope(session, caller, course=course or (chat.course if chat else None))
        if chat is None:
            return TurnContext(caller.sub, new_id(), True, course, scope, message, 0, [], [], None, 0, 0)
        history = [ChatTurn(m.role, m.content) for m in _recent_messages(session, chat.id, HISTORY_TURNS)]  # type: ignore[arg-type]
        state = LearningState(**chat.learning_state) if chat.learning_state else None
        return TurnContext(
            caller.sub,
            chat.id,
            False,
            chat.course,
            scope,
            message,
            chat.hint_level,
            _focus_passages(chat.focus_chunks),
            history,
            state,
            chat.learning_state_version,
            chat.message_count,
        )


def _owned_session(session: Session, caller: Claims, session_id: str) -> ChatSession:
    chat = session.get(ChatSession, session_id)
    if chat is None or chat.user_id != caller.sub or chat.deleted_at is not None:
        raise NotFound("No such chat session")
    return chat


def _focus_passages(stored: list[Any] | None) -> list[dict[str, Any]]:
    # Older sessions stored bare chunk ids: those carry no text to answer a follow-up from.
    return [item for item in stored or [] if isinstance(item, dict) and item.get("text")]


# --- phase 2: no connection held --------------------------------------------------------------------
@dataclass
class _Plan:
    """What phase 2 decided before the model call: a refusal, a cached answer, or passages to answer from."""

    result: TurnResult | None
    passages: list[Passage] = field(default_factory=list)
    hint_level: int = 0
    cache_key: str | None = None


async def _plan(ctx: TurnContext) -> _Plan:
    from aiteacher.llm import get_llm

    settings = get_settings()
    llm = get_llm()
    integrity_violation = guardrails.is_integrity_violation(ctx.message)
    # Moderation (a remote call with OpenAI) runs while we retrieve; its verdict is still applied first.
    moderation, results = await asyncio.gather(
        llm.moderate_async(ctx.message),
        _no_results() if integrity_violation else _retrieve(ctx.scope, ctx.message, settings.tutor_top_k),
    )
    if moderation.flagged:
        audit("ai.chat", "flagged", actor=ctx.caller_id, target=ctx.session_id, categories=moderation.categories)
        return _Plan(
            TurnResult(
                ctx.session_id,
                guardrails.FLAGGED_REPLY,
                [],
                True,
                reason="flagged",
                flagged=True,
                categories=moderation.categories,
            )
        )
    if integrity_violation:
        audit("ai.chat", "refused", actor=ctx.caller_id, target=ctx.session_id, reason="integrity")
        return _Plan(TurnResult(ctx.session_id, guardrails.INTEGRITY_REPLY, [], True, reason="integrity"))

    from aiteacher.tutor.grounding import GateSettings, grounded

    passages = [hit.passage() for hit in grounded(ctx.message, results, GateSettings.from_settings(settings))]
    follow_up = False
    if not passages and ctx.focus and guardrails.is_follow_up(ctx.message):
        passages, follow_up = [_passage(item) for item in ctx.focus], True
    if not passages:
        audit("ai.chat", "refused", actor=ctx.caller_id, target=ctx.session_id, reason="not_grounded")
        return _Plan(TurnResult(ctx.session_id, guardrails.NOT_IN_MATERIAL_REPLY, [], True, reason="not_in_material"))
    hint_level = _next_hint_level(ctx, passages[0].chunk_id, follow_up)
    # A new session's id was made for this request: no earlier attempt can have cached its first answer, and
    # nothing can ever read one back. Only a turn of an existing session reads (and writes) the cache.
    key = (
        _answer_cache_key(llm.name, ctx, passages, hint_level)
        if settings.chat_cache_seconds and not ctx.is_new
        else None
    )
    cached = await _cache_get(key) if key else None
    if cached is not None:
        return _Plan(
            TurnResult(
                ctx.session_id,
                cached["answer"],
                cached["citations"],
                False,
                hint_level,
                cached=True,
                focus=cached["focus"],
            ),
            passages,
            hint_level,
        )
    return _Plan(None, passages, hint_level, key)


async def _no_results() -> list[SearchHit]:
    return []


@lru_cache(maxsize=1)
def _transaction_pool() -> ThreadPoolExecutor:
    """A turn's phase 1 and phase 3 run here, a few at a time and in arrival order. On the default thread pool
    (40 threads) a burst of 100 turns shares the GIL among all of them, so every turn finishes its read only
    near the end of the burst; first come first served, the median turn waits half as long (docs/benchmarks.md)."""
    settings = get_settings()
    workers = min(settings.tutor_transaction_workers, settings.db_pool_size + settings.db_max_overflow)
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tutor-tx")


async def in_transaction_pool(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the transaction executor, with the caller's context (request id, log fields)."""
    from aiteacher.scheduling import SHORT_WAIT, off_cpu

    context = contextvars.copy_context()
    async with off_cpu(SHORT_WAIT):
        return await asyncio.get_running_loop().run_in_executor(_transaction_pool(), context.run, fn, *args)


@lru_cache(maxsize=1)
def _retrieval_pool() -> ThreadPoolExecutor:
    """Bounded: the local embedder is CPU work, and the sync vector/cache clients block a thread each."""
    return ThreadPoolExecutor(max_workers=get_settings().tutor_retrieval_workers, thread_name_prefix="tutor-rag")


async def _retrieve(scope: Scope, message: str, top_k: int) -> list[SearchHit]:
    """A cached search is read on the event loop; only a miss takes a thread of the retrieval pool."""
    from aiteacher.curriculum.search import search_async

    results, _cached = await search_async(scope, message, top_k, _retrieval_pool())
    return results


def _passage(item: dict[str, Any]) -> Passage:
    """A focus passage the session stored (`asdict(Passage)`) back as a passage: the search hit's conversion."""
    from aiteacher.curriculum.search import SearchHit

    return SearchHit.model_validate(item).passage()


def _next_hint_level(ctx: TurnContext, best_chunk: str, follow_up: bool) -> int:
    """Another attempt at the same material (a follow-up, or the same best passage) climbs one rung (hint ->
    stronger hint -> worked explanation); a new topic starts again at a hint."""
    same_topic = follow_up or best_chunk in {item.get("chunk_id") for item in ctx.focus}
    return min(ctx.hint_level + 1, HintLevel.WORKED) if same_topic and not ctx.is_new else HintLevel.SOCRATIC


def _answered(ctx: TurnContext, reply: Any, passages: list[Passage], hint_level: int) -> TurnResult:
    used = reply.used_passages or passages[:1]
    focus = [asdict(passage) for passage in used]
    return TurnResult(ctx.session_id, reply.answer, _citations(used), False, hint_level, focus=focus)


async def answer_turn(ctx: TurnContext) -> TurnResult:
    """The whole reply at once (the JSON contract)."""
    from aiteacher.llm import get_llm

    plan = await _plan(ctx)
    if plan.result is None:
        reply = await get_llm().tutor_answer_async(
            ctx.message,
            plan.passages,
            history=ctx.history,
            learning_state=ctx.learning_state,
            hint_level=plan.hint_level,
        )
        plan.result = _answered(ctx, reply, plan.passages, plan.hint_level)
        await _cache_set(plan.cache_key, plan.result)
    _audit_answer(ctx, plan.result)
    return plan.result


async def stream_turn(ctx: TurnContext) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event, data): `delta` {text} while the answer is written, then `done` {session_id,
    citations, refused, reason, hint_level} once it is stored, or `error` {problem} if anything fails."""
    from aiteacher.llm import TutorReply, get_llm

    try:
        plan = await _plan(ctx)
        if plan.result is not None:
            yield "delta", {"text": plan.result.answer}
        else:
            reply: Any = None
            async for piece in get_llm().stream_tutor_answer(
                ctx.message,
                plan.passages,
                history=ctx.history,
                learning_state=ctx.learning_state,
                hint_level=plan.hint_level,
            ):
                if isinstance(piece, TutorReply):
                    reply = piece
                else:
                    yield "delta", {"text": piece}
            plan.result = _answered(ctx, reply, plan.passages, plan.hint_level)
            await _cache_set(plan.cache_key, plan.result)
        _audit_answer(ctx, plan.result)
        result = await in_transaction_pool(record_turn, ctx, plan.result)
    except AppError as error:
        yield "error", error.problem()
        return
    except Exception:  # the stream has started: the failure travels as an event, never as a broken body
        import logging

        logging.getLogger(__name__).exception("chat stream failed")
        from aiteacher.errors import InternalError

        yield "error", InternalError().problem()
        return
    yield (
        "done",
        {
            "session_id": result.session_id,
            "citations": result.citations,
            "refused": result.refused,
            "reason": result.reason,
            "hint_level": result.hint_level,
        },
    )


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _audit_answer(ctx: TurnContext, result: TurnResult) -> None:
    if not result.refused:
        audit(
            "ai.chat",
            "answered",
            actor=ctx.caller_id,
            target=ctx.session_id,
            hint_level=result.hint_level,
            cached=result.cached,
            citations=len(result.citations),
        )


def _citations(passages: list[Passage]) -> list[dict[str, Any]]:
    seen: set[tuple[str, int]] = set()
    citations = []
    for passage in passages:
        key = (passage.document_id, passage.page)
        if key not in seen:
            seen.add(key)
            from aiteacher.curriculum.search import page_url

            citations.append(
                {
                    "document_id": passage.document_id,
                    "title": passage.title,
                    "page": passage.page,
                    "unit": passage.unit,
                    "ocr": passage.ocr,
                    "page_url": page_url(passage.document_id, passage.page),
                }
            )
    return citations


def _answer_cache_key(provider: str, ctx: TurnContext, passages: list[Passage], hint_level: int) -> str:
    """Per user, session and conversation position: an answer that depends on a session's history or learning
    state can only ever be served back to the same student at the same point of the same conversation (a
    client retrying a turn), never to anyone else."""
    material = {
        "provider": provider,
        "user": ctx.caller_id,
        "session": ctx.session_id,
        "position": ctx.message_count,
        "state": ctx.state_version,
        "hint": hint_level,
        "scope": ctx.scope.filters(),
        "q": guardrails.normalize_question(ctx.message),
        "chunks": sorted(p.chunk_id for p in passages),
    }
    return "tutor:" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


async def _cache_get(key: str) -> dict[str, Any] | None:
    from aiteacher.cache import get_json_async

    cached = await get_json_async(key)
    return cached if isinstance(cached, dict) else None


async def _cache_set(key: str | None, result: TurnResult) -> None:
    from aiteacher.cache import set_json_async

    if key:
        value = {"answer": result.answer, "citations": result.citations, "focus": result.focus}
        await set_json_async(key, value, get_settings().chat_cache_seconds)


# --- phase 3: a short write -------------------------------------------------------------------------
def record_turn(ctx: TurnContext, result: TurnResult) -> TurnResult:
    """Three statements and the commit, as plain SQL through the session (no unit of work: a turn runs this on
    every answer): the session's row inserted whole, or locked and updated; the two messages in one INSERT."""
    now = datetime.now(UTC)
    ladder: dict[str, Any] = {}
    if not result.refused:
        ladder["hint_level"] = result.hint_level or 0
        if result.focus is not None:
            ladder["focus_chunks"] = result.focus
    with transaction() as session:
        if ctx.is_new:
            before, course = 0, ctx.course
            repository.insert_session(
                session,
                ctx.session_id,
                ctx.caller_id,
                course,
                now,
                hint_level=ladder.get("hint_level", 0),
                focus_chunks=ladder.get("focus_chunks", []),
            )
        else:
            locked = repository.lock_session(session, ctx.session_id)
            if locked is None:
                raise NotFound("No such chat session")
            before, course = locked
            repository.advance_session(session, ctx.session_id, before + 2, now, ladder)
        repository.insert_turn_messages(
            session,
            ctx.session_id,
            now,
            question={"content": ctx.message, "flagged": result.flagged},
            answer={
                "content": result.answer,
                "citations": result.citations,
                "refused": result.refused,
                "hint_level": result.hint_level,
            },
        )
        count = before + 2
        chat_id = ctx.session_id
        if result.flagged:
            from aiteacher.notifications import notify_flagged_message

            faculty_id, categories = ctx.scope.faculty_id, result.categories

            def notify() -> None:
                try:
                    notify_flagged_message(faculty_id, chat_id, categories, course=course)
                except Exception:  # the turn is stored and audited: a cache or queue outage must not fail it
                    import logging

                    logging.getLogger(__name__).exception("flag notification for session %s failed", chat_id)

            after_commit(session, notify)
        every = get_settings().summary_every_messages
        if count // every > before // every:
            from aiteacher.tutor.jobs import summarize_session

            after_commit(session, lambda: summarize_session.enqueue(chat_id, job_id=f"summary-{chat_id}-{count}"))
    return result


# --- conversations ----------------------------------------------------------------------------------
def list_sessions(session: Session, caller: Claims, limit: int, offset: int) -> dict[str, Any]:
    """The caller's own sessions, newest activity first, each with a title (its first question) and a preview
    of its last message. Three queries whatever the page size."""
    chats = repository.sessions_page(session, caller.sub, limit, offset)
    page, more = list(chats[:limit]), len(chats) > limit
    messages = repository.first_and_last_messages(session, [chat.id for chat in page])
    first: dict[str, ChatMessage] = {}
    last: dict[str, ChatMessage] = {}
    for message in sorted(messages, key=lambda m: m.id):
        if message.role == "user":
            first.setdefault(message.session_id, message)
        last[message.session_id] = message
    return {
        "sessions": [
            {
                "id": chat.id,
                "course": chat.course,
                "title": _shorten(first[chat.id].content, TITLE_CHARS) if chat.id in first else "New conversation",
                "last_message": (
                    {
                        "role": last[chat.id].role,
                        "preview": _shorten(last[chat.id].content, PREVIEW_CHARS),
                        "created_at": last[chat.id].created_at.isoformat(),
                    }
                    if chat.id in last
                    else None
                ),
                "message_count": chat.message_count,
                "hint_level": chat.hint_level,
                "created_at": chat.created_at.isoformat(),
                "updated_at": chat.updated_at.isoformat(),
            }
            for chat in page
        ],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def session_view(session: Session, caller: Claims, session_id: str) -> dict[str, Any]:
    chat = _owned_session(session, caller, session_id)
    messages = repository.messages(session, chat.id)
    return {
        "id": chat.id,
        "course": chat.course,
        "hint_level": chat.hint_level,
        "learning_state": {**(chat.learning_state or {}), "version": chat.learning_state_version},
        "created_at": chat.created_at.isoformat(),
        "updated_at": chat.updated_at.isoformat(),
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "citations": m.citations,
                "refused": m.refused,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
    }


def delete_session(session: Session, caller: Claims, session_id: str) -> None:
    chat = _owned_session(session, caller, session_id)
    chat.deleted_at = datetime.now(UTC)
    audit("ai.chat_session.delete", "ok", actor=caller.sub, target=chat.id)
