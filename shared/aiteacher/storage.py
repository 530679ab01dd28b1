"""Object store (S3, MinIO, LocalStack, moto) through boto3, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiteacher import registry
from aiteacher.errors import PayloadTooLarge, ServiceUnavailable


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str
    size: int


def _aws_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    from aiteacher.config import get_settings

    settings = get_settings()
    credentials = {}
    if settings.s3_access_key_id:
        credentials = {
            "aws_access_key_id": settings.s3_access_key_id,
            "aws_secret_access_key": settings.s3_secret_access_key,
        }
    return boto3.client(
        service,
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
        **credentials,
    )


@registry.client()
def get_s3() -> Any:
    return _aws_client("s3")


@registry.client()
def get_sqs() -> Any:
    """The queue bucket notifications go to (same endpoint as S3: LocalStack and moto serve both)."""
    return _aws_client("sqs")


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable("The object store is unreachable; try again shortly")


def put_pdf(
    key: str, data: bytes, metadata: dict[str, str] | None = None, content_type: str = "application/pdf"
) -> str:
    """Store a document (a PDF unless `content_type` says otherwise) and return its ETag (without quotes)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from aiteacher.config import get_settings

    try:
        response = get_s3().put_object(
            Bucket=get_settings().s3_bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata or {}
        )
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(exc) from exc
    return str(response.get("ETag", "")).strip('"')


class ObjectMissing(LookupError):
    pass


def get_object(bucket: str, key: str, max_bytes: int) -> StoredObject:
    """Download an object, refusing anything larger than `max_bytes` before reading it."""
    from botocore.exceptions import ClientError

    s3 = get_s3()
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise ObjectMissing(key) from exc
        raise
    size = int(head.get("ContentLength", 0))
    if size > max_bytes:
        raise PayloadTooLarge(f"The object is {size} bytes; the limit is {max_bytes}")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    data = body.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The object exceeds the limit of {max_bytes} bytes")
    return StoredObject(data=data, etag=str(head.get("ETag", "")).strip('"'), size=len(data))


def delete_object(bucket: str, key: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        get_s3().delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(exc) from exc


def ensure_bucket(bucket: str) -> None:
    from botocore.exceptions import ClientError

    s3 = get_s3()
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)
