"""Bucket notifications in every shape we receive, reduced to (bucket, key, etag, size) records.

- AWS S3 (`Records`, keys URL-encoded), also delivered through SQS or straight to a Lambda;
- MinIO webhooks (`EventName` with the `s3:` prefix, `Key` = bucket/key, plus S3-style `Records`);
- CloudEvents 1.0, binary (`ce-*` headers, data in the body) or structured
  (`application/cloudevents+json`), whose data is one of the above or an object with bucket/key.

Parsing is total: a body that is no event at all is a `ValidationFailed` (422); a record that is an event
but not one we ingest (another bucket, odd types, sizes or keys, beyond EVENTS_MAX_RECORDS) is *ignored*
with a reason. Nothing in a body can raise anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from aiteacher.errors import ValidationFailed
from aiteacher.ingestion.formats import BUCKET_SUFFIXES


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    etag: str
    size: int | None
    event_name: str


@dataclass
class ParsedEvents:
    created: list[ObjectEvent]
    ignored: list[dict[str, str]]
    buckets: set[str] = field(default_factory=set)
    max_records: int = 100
    max_size: int = 50 * 1024 * 1024


MAX_KEY_CHARS = 1024  # documents.object_key
MAX_ETAG_CHARS = 128  # documents.etag


def parse(body: object, headers: dict[str, str]) -> ParsedEvents:
    from aiteacher.config import get_settings

    settings = get_settings()
    parsed = ParsedEvents(
        created=[],
        ignored=[],
        buckets=settings.ingested_buckets,
        max_records=settings.events_max_records,
        max_size=settings.ingest_max_bytes,
    )
    if headers.get("ce-specversion"):
        _parse_payload(body, parsed, ce_type=headers.get("ce-type", ""))
    elif isinstance(body, dict) and "specversion" in body:
        data = body.get("data")
        if data is None and "data_base64" in body:
            raise ValidationFailed("CloudEvents with data_base64 are not supported; send JSON data")
        _parse_payload(data, parsed, ce_type=str(body.get("type", "")))
    else:
        _parse_payload(body, parsed, ce_type="")
    return parsed


def _parse_payload(payload: object, parsed: ParsedEvents, ce_type: str) -> None:
    if not isinstance(payload, dict):
        raise ValidationFailed("The event body must be a JSON object")
    if payload.get("Event") in ("s3:TestEvent", "TestEvent"):
        parsed.ignored.append({"key": "", "reason": "s3:TestEvent (notification configuration check)"})
        return
    if isinstance(payload.get("Records"), list):
        records = payload["Records"]
        for record in records[: parsed.max_records]:
            _parse_record(record, parsed)
        if len(records) > parsed.max_records:
            parsed.ignored.append(
                {
                    "key": "",
                    "reason": f"{len(records) - parsed.max_records} record(s) beyond the "
                    f"limit of {parsed.max_records} per event",
                }
            )
        return
    if "s3" in payload and isinstance(payload["s3"], dict):  # a single record
        _parse_record(payload, parsed)
        return
    nested = payload.get("detail")
    detail = nested if isinstance(nested, dict) else payload  # EventBridge style
    bucket = detail.get("bucket")
    obj = detail.get("object")
    bucket_name = bucket.get("name") if isinstance(bucket, dict) else bucket
    if isinstance(obj, dict) and bucket_name:
        _add(
            parsed,
            bucket_name,
            obj.get("key", ""),
            obj.get("etag") or obj.get("eTag"),
            obj.get("size"),
            ce_type or "ObjectCreated",
            encoded=False,
        )
        return
    if bucket_name and detail.get("key"):
        _add(
            parsed,
            bucket_name,
            detail["key"],
            detail.get("etag"),
            detail.get("size"),
            ce_type or "ObjectCreated",
            encoded=False,
        )
        return
    raise ValidationFailed("Unrecognised event: expected S3/MinIO Records, a CloudEvent or {bucket, key}")


def _parse_record(record: object, parsed: ParsedEvents) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
        raise ValidationFailed("Each record needs an 's3' object")
    s3 = record["s3"]
    bucket = s3.get("bucket")
    obj = s3.get("object")
    if not isinstance(bucket, dict) or not isinstance(obj, dict):
        parsed.ignored.append({"key": "", "reason": "s3.bucket and s3.object must be objects"})
        return
    if not bucket.get("name") or not obj.get("key"):
        raise ValidationFailed("Each record needs s3.bucket.name and s3.object.key")
    _add(
        parsed,
        bucket["name"],
        obj["key"],
        obj.get("eTag") or obj.get("etag"),
        obj.get("size"),
        record.get("eventName", ""),
        encoded=True,
    )


def _add(
    parsed: ParsedEvents, bucket: object, key: object, etag: object, size: object, event_name: object, encoded: bool
) -> None:
    if not isinstance(key, str) or not isinstance(bucket, str):
        parsed.ignored.append({"key": str(key)[:200], "reason": "the bucket name and key must be strings"})
        return
    key = unquote_plus(key) if encoded else key
    event_name = event_name if isinstance(event_name, str) else ""
    if bucket not in parsed.buckets:
        parsed.ignored.append(
            {"key": key[:MAX_KEY_CHARS], "reason": f"bucket '{bucket[:100]}' is not ingested (EVENTS_BUCKETS)"}
        )
        return
    if len(key) > MAX_KEY_CHARS or "\x00" in key:
        parsed.ignored.append(
            {"key": key[:200], "reason": f"the key is longer than {MAX_KEY_CHARS} characters or contains NUL"}
        )
        return
    name = event_name.removeprefix("s3:")
    lowered = name.lower()
    if "objectcreated" not in lowered.replace(":", "").replace(".", "").replace("_", ""):
        parsed.ignored.append({"key": key, "reason": f"not an object-created event ({event_name or 'no name'})"})
        return
    if not key.lower().endswith(BUCKET_SUFFIXES):  # a pre-filter for junk: the worker decides by content
        parsed.ignored.append({"key": key, "reason": "not a document (ingested: " + ", ".join(BUCKET_SUFFIXES) + ")"})
        return
    if not etag or not isinstance(etag, str | int) or len(str(etag)) > MAX_ETAG_CHARS:
        parsed.ignored.append({"key": key, "reason": "the event carries no usable ETag"})
        return
    if isinstance(size, str) and size.isascii() and size.isdigit() and len(size) <= 15:
        size = int(size)
    size_value = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    if size_value is not None and size_value > parsed.max_size:
        parsed.ignored.append({"key": key, "reason": f"the object is larger than the limit of {parsed.max_size} bytes"})
        return
    parsed.created.append(ObjectEvent(bucket, key, str(etag).strip('"'), size_value, name))
