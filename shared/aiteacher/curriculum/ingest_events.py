"""The object-created function's logic: authenticate the sender, parse, create documents once."""

from __future__ import annotations

import hmac
from typing import Any

from aiteacher.audit import audit
from aiteacher.errors import ServiceUnavailable, Unauthorized


def check_events_token(authorization: str) -> None:
    from aiteacher.config import get_settings

    expected = get_settings().events_token
    if not expected:
        raise ServiceUnavailable("EVENTS_TOKEN is not configured; bucket events are refused")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        audit("events.object_created", "denied")
        raise Unauthorized(
            "A valid events token is required (Authorization: Bearer <EVENTS_TOKEN>)", code="invalid_events_token"
        )


def handle_events(body: object, ce_headers: dict[str, str]) -> dict[str, Any]:
    from sqlalchemy.exc import DataError, IntegrityError

    from aiteacher.curriculum import events
    from aiteacher.curriculum.service import register_object
    from aiteacher.db import transaction

    parsed = events.parse(body, ce_headers)
    accepted = []
    for event in parsed.created:
        # One transaction per object: a bad record never takes the others down with it.
        try:
            with transaction() as session:
                document_id, created = register_object(session, event.bucket, event.key, event.etag, event.size)
        except (DataError, IntegrityError) as exc:  # a value the schema cannot hold: ignored, never a 500
            parsed.ignored.append({"key": event.key[:200], "reason": f"unstorable record ({type(exc).__name__})"})
            continue
        accepted.append(
            {"bucket": event.bucket, "key": event.key, "document_id": document_id, "duplicate": not created}
        )
    audit("events.object_created", "accepted", accepted=len(accepted), ignored=len(parsed.ignored))
    return {"accepted": accepted, "ignored": parsed.ignored}
