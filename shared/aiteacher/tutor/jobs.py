"""Learning-state summaries: every N messages the session's state (topics, misconceptions, next
steps) is rebuilt from the recent turns and the previous state. Idempotent per (session, count).

Like a chat turn, the job reads in one short transaction, calls the model with no connection checked
out, and writes in another short transaction (only if no newer summary landed meanwhile)."""

from __future__ import annotations

from typing import Any

from aiteacher.jobs import job


@job(queue="summaries", timeout=lambda settings: settings.summary_job_timeout_seconds)
def summarize_session(session_id: str) -> dict[str, Any]:
    from dataclasses import asdict

    from aiteacher.db import transaction
    from aiteacher.db.models import ChatSession
    from aiteacher.llm import ChatTurn, LearningState, get_llm
    from aiteacher.tutor import repository

    with transaction(read_only=False) as session:
        chat = session.get(ChatSession, session_id)
        if chat is None or chat.deleted_at is not None:
            return {"session_id": session_id, "status": "gone"}
        rows = repository.last_messages(session, session_id, 24)
        turns = [ChatTurn(m.role, m.content) for m in reversed(rows) if not m.flagged]  # type: ignore[arg-type]
        version = chat.learning_state_version
        previous = LearningState(**chat.learning_state, version=version) if chat.learning_state else None

    state = get_llm().summarize_learning_state(turns, previous)  # no connection held while the model works
    values = asdict(state)
    values.pop("version", None)

    with transaction() as session:
        chat = session.get(ChatSession, session_id, with_for_update=True)
        if chat is None or chat.deleted_at is not None:
            return {"session_id": session_id, "status": "gone"}
        if chat.learning_state_version != version:
            return {"session_id": session_id, "version": chat.learning_state_version, "status": "superseded"}
        chat.learning_state = values
        chat.learning_state_version = version + 1
        return {"session_id": session_id, "version": chat.learning_state_version}
