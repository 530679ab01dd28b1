"""object-created: bucket notifications (AWS S3, MinIO webhook, CloudEvents, direct S3->Lambda)
become documents, once per object version, and queue their ingestion."""

import json
from typing import Any

from fastapi import Request

from aiteacher.curriculum.schemas import EventsAccepted
from aiteacher.web import create_app

app = create_app("object-created", "Bucket object-created events")


@app.post(
    "/",
    status_code=202,
    response_model=EventsAccepted,
    responses={401: {"description": "Missing or wrong events token"}},
    openapi_extra={"security": [{"bearer": []}]},
)  # the bucket webhook's EVENTS_TOKEN
async def object_created(request: Request) -> EventsAccepted:
    from fastapi.concurrency import run_in_threadpool

    from aiteacher.curriculum.ingest_events import check_events_token, handle_events
    from aiteacher.errors import ValidationFailed

    check_events_token(request.headers.get("authorization", ""))
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise ValidationFailed("The body is not valid JSON (or is nested too deeply)") from exc
    headers = {key.lower(): value for key, value in request.headers.items() if key.lower().startswith("ce-")}
    return EventsAccepted.model_validate(await run_in_threadpool(handle_events, body, headers))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda: a direct S3 notification (`Records` with `eventSource` aws:s3) is handled in-process;
    anything else (Function URL, API Gateway) goes through the HTTP app."""
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and all(r.get("eventSource") == "aws:s3" for r in records):
        from aiteacher.curriculum.ingest_events import handle_events

        return handle_events(event, {})
    from aiteacher.web import lambda_handler

    return lambda_handler(app)(event, context)
