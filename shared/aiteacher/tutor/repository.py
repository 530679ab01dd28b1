"""The tutor domain's SQL: a conversation's messages and the caller's page of conversations.

Statements only; the turn's flow (and its no-connection-while-the-model-thinks rule) is the service's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from aiteacher.db.models import ChatMessage, ChatSession

#: A turn's inserts go to the tables (Core), not through the ORM's bulk insert: same SQL and types, but the ORM
#: path (entity lookup, bulk persistence, a fresh cache key) cost 3.2 ms of CPU per write transaction against
#: 1.8 ms for Core on the capacity bench's machine (docs/benchmarks.md, "Tutor capacity").
_SESSIONS = cast(Table, ChatSession.__table__)
_MESSAGES = cast(Table, ChatMessage.__table__)


def recent_messages(session: Session, chat_id: str, limit: int) -> list[ChatMessage]:
    """The last `limit` unflagged messages of a conversation, oldest first."""
    rows = session.scalars(
        select(ChatMessage)
        .where(ChatMessage.session_id == chat_id, ChatMessage.flagged.is_(False))
        .order_by(ChatMessage.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def last_messages(session: Session, chat_id: str, limit: int) -> list[ChatMessage]:
    """The last `limit` messages of a conversation, flagged ones included, newest first."""
    return list(
        session.scalars(
            select(ChatMessage).where(ChatMessage.session_id == chat_id).order_by(ChatMessage.id.desc()).limit(limit)
        ).all()
    )


def sessions_page(session: Session, user_id: str, limit: int, offset: int) -> list[ChatSession]:
    """Up to `limit + 1` of the user's undeleted conversations, newest activity first."""
    return list(
        session.scalars(
            select(ChatSession)
            .where(ChatSession.user_id == user_id, ChatSession.deleted_at.is_(None))
            .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
            .offset(offset)
            .limit(limit + 1)
        ).all()
    )


def first_and_last_messages(session: Session, chat_ids: list[str]) -> list[ChatMessage]:
    """Each conversation's first question and last message (one query whatever the page size)."""
    if not chat_ids:
        return []
    first_ids = (
        select(func.min(ChatMessage.id))
        .where(ChatMessage.session_id.in_(chat_ids), ChatMessage.role == "user")
        .group_by(ChatMessage.session_id)
    )
    last_ids = (
        select(func.max(ChatMessage.id)).where(ChatMessage.session_id.in_(chat_ids)).group_by(ChatMessage.session_id)
    )
    return list(
        session.scalars(select(ChatMessage).where(ChatMessage.id.in_(first_ids.union(last_ids).scalar_subquery())))
    )


def messages(session: Session, chat_id: str) -> list[ChatMessage]:
    return list(session.scalars(select(ChatMessage).where(ChatMessage.session_id == chat_id).order_by(ChatMessage.id)))


# --- a turn's write phase: plain statements, no unit of work (one per answer) ---------------------------


def insert_session(
    session: Session,
    chat_id: str,
    user_id: str,
    course: str | None,
    now: datetime,
    *,
    hint_level: int,
    focus_chunks: list[Any],
) -> None:
    """A new session's row, whole, with its first turn counted (a Core insert, see `_SESSIONS`)."""
    session.execute(
        insert(_SESSIONS),
        {
            "id": chat_id,
            "user_id": user_id,
            "course": course,
            "hint_level": hint_level,
            "focus_chunks": focus_chunks,
            "learning_state": {},
            "learning_state_version": 0,
            "message_count": 2,
            "created_at": now,
            "updated_at": now,
        },
    )


def lock_session(session: Session, chat_id: str) -> tuple[int, str | None] | None:
    """(message count, course) of a live session, its row locked until the commit; None if gone or deleted."""
    row = session.execute(
        select(ChatSession.message_count, ChatSession.course, ChatSession.deleted_at)
        .where(ChatSession.id == chat_id)
        .with_for_update()
    ).first()
    if row is None or row.deleted_at is not None:
        return None
    return row.message_count or 0, row.course


def advance_session(session: Session, chat_id: str, message_count: int, now: datetime, values: dict[str, Any]) -> None:
    session.execute(
        update(ChatSession)
        .where(ChatSession.id == chat_id)
        .values(message_count=message_count, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )


def insert_turn_messages(
    session: Session, chat_id: str, now: datetime, *, question: dict[str, Any], answer: dict[str, Any]
) -> None:
    """The question and the answer in one statement; the question's id comes before the answer's."""
    common = {"session_id": chat_id, "created_at": now}
    session.execute(
        insert(_MESSAGES),
        [
            {**common, "role": "user", "citations": [], "refused": False, "hint_level": None, **question},
            {**common, "role": "assistant", "flagged": False, **answer},
        ],
    )
