"""Learning-state summaries: every N messages the session's state (topics, misconceptions, next
steps) is rebuilt from the recent turns and the previous state. Idempotent per (session, count)."""

from __future__ import annotations

from typing import Any


def summarize_session(session_id: str) -> dict[str, Any]:
    from dataclasses import asdict

    from sqlalchemy import select

    from aiteacher.db import transaction
    from aiteacher.db.models import ChatMessage, ChatSession
    from aiteacher.llm import ChatTurn, LearningState, get_llm

    with transaction() as session:
        chat = session.get(ChatSession, session_id)
        if chat is None or chat.deleted_at is not None:
            return {"session_id": session_id, "status": "gone"}
        rows = session.scalars(select(ChatMessage).where(ChatMessage.session_id == session_id)
                               .order_by(ChatMessage.id.desc()).limit(24)).all()
        turns = [ChatTurn(m.role, m.content) for m in reversed(rows) if not m.flagged]
        previous = LearningState(**chat.learning_state, version=chat.learning_state_version) \
            if chat.learning_state else None
        state = get_llm().summarize_learning_state(turns, previous)
        values = asdict(state)
        values.pop("version", None)
        chat.learning_state = values
        chat.learning_state_version = chat.learning_state_version + 1
        return {"session_id": session_id, "version": chat.learning_state_version}
