"""The tutor domain's SQL: a conversation's messages and the caller's page of conversations.

Statements only; the turn's flow (and its no-connection-while-the-model-thinks rule) is the service's.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aiteacher.db.models import ChatMessage, ChatSession


def recent_messages(session: Session, chat_id: str, limit: int) -> list[ChatMessage]:
    """The last `limit` unflagged messages of a conversation, oldest first."""
    rows = session.scalars(
        select(ChatMessage)
        .where(ChatMessage.session_id == chat_id, ChatMessage.flagged.is_(False))
        .order_by(ChatMessage.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


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
