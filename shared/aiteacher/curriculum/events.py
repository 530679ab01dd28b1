"""Bucket notifications in every shape we receive, reduced to (bucket, key, etag, size) records.

- AWS S3 (`Records`, keys URL-encoded), also delivered through SQS or straight to a Lambda;
- MinIO webhooks (`EventName` with the `s3:` prefix, `Key` = bucket/key, plus S3-style `Records`);
- CloudEvents 1.0, binary (`ce-*` headers, data in the body) or structured
  (`application/cloudevents+json`), whose data is one of the above or an object with bucket/key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
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


def parse(body: Any, headers: dict[str, str]) -> ParsedEvents:
    parsed = ParsedEvents(created=[], ignored=[])
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


def _parse_payload(payload: Any, parsed: ParsedEvents, ce_type: str) -> None:
    if not isinstance(payload, dict):
        raise ValidationFailed("The event body must be a JSON object")
    if payload.get("Event") in ("s3:TestEvent", "TestEvent"):
        parsed.ignored.append({"key": "", "reason": "s3:TestEvent (notification configuration check)"})
        return
    if isinstance(payload.get("Records"), list):
        for record in payload["Records"]:
            _parse_record(record, parsed)
        return
    if "s3" in payload and isinstance(payload["s3"], dict):  # a single record
        _parse_record(payload, parsed)
        return
    detail = payload.get("detail") if isinstance(payload.get("detail"), dict) else payload  # EventBridge style
    bucket = detail.get("bucket")
    obj = detail.get("object")
    bucket_name = bucket.get("name") if isinstance(bucket, dict) else bucket
    if isinstance(obj, dict) and bucket_name:
        _add(parsed, str(bucket_name), str(obj.get("key", "")), obj.get("etag") or obj.get("eTag"),
             obj.get("size"), ce_type or "ObjectCreated", encoded=False)
        return
    if bucket_name and detail.get("key"):
        _add(parsed, str(bucket_name), str(detail["key"]), detail.get("etag"), detail.get("size"),
             ce_type or "ObjectCreated", encoded=False)
        return
    raise ValidationFailed("Unrecognised event: expected S3/MinIO Records, a CloudEvent or {bucket, key}")


def _parse_record(record: Any, parsed: ParsedEvents) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
        raise ValidationFailed("Each record needs an 's3' object")
    s3 = record["s3"]
    bucket = (s3.get("bucket") or {}).get("name")
    obj = s3.get("object") or {}
    if not bucket or not obj.get("key"):
        raise ValidationFailed("Each record needs s3.bucket.name and s3.object.key")
    _add(parsed, str(bucket), str(obj["key"]), obj.get("eTag") or obj.get("etag"), obj.get("size"),
         str(record.get("eventName", "")), encoded=True)


def _add(parsed: ParsedEvents, bucket: str, key: str, etag: Any, size: Any, event_name: str, encoded: bool) -> None:
    key = unquote_plus(key) if encoded else key
    name = event_name.removeprefix("s3:")
    lowered = name.lower()
    if "objectcreated" not in lowered.replace(":", "").replace(".", "").replace("_", ""):
        parsed.ignored.append({"key": key, "reason": f"not an object-created event ({event_name or 'no name'})"})
        return
    if not key.lower().endswith(BUCKET_SUFFIXES):  # a pre-filter for junk: the worker decides by content
        parsed.ignored.append({"key": key, "reason": "not a document (ingested: " + ", ".join(BUCKET_SUFFIXES) + ")"})
        return
    if not etag:
        parsed.ignored.append({"key": key, "reason": "the event carries no ETag"})
        return
    try:
        size_value = int(size) if size is not None else None
    except (TypeError, ValueError):
        size_value = None
    parsed.created.append(ObjectEvent(bucket, key, str(etag).strip('"'), size_value, name))
