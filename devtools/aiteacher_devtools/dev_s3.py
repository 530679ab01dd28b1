"""`make dev` keeps its bucket: the embedded moto S3 lives in memory, so its objects are mirrored to
`DATA_DIR/s3/` (a snapshot every few seconds and at stop) and put back at the next start, before the
bucket notifications are wired (restored objects are not new uploads). Queued documents whose jobs
the restart lost are picked up by the reconciler."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("aiteacher.dev_s3")


class S3Mirror:
    def __init__(self, folder: Path, client: Any):
        self.folder = folder
        self.client = client
        self.index_path = folder / "index.json"
        self._lock = threading.Lock()

    def _index(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(self.index_path.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    @staticmethod
    def _name(bucket: str, key: str) -> str:
        return hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()

    def save(self) -> int:
        """Write new or changed objects, forget deleted ones. Returns how many objects were written."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "objects").mkdir(exist_ok=True)
            index = self._index()
            seen: set[str] = set()
            written = 0
            for bucket in self.client.list_buckets().get("Buckets", []):
                paginator = self.client.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket["Name"]):
                    for item in page.get("Contents", []):
                        name = self._name(bucket["Name"], item["Key"])
                        seen.add(name)
                        if index.get(name, {}).get("etag") == item["ETag"]:
                            continue
                        stored = self.client.get_object(Bucket=bucket["Name"], Key=item["Key"])
                        (self.folder / "objects" / name).write_bytes(stored["Body"].read())
                        index[name] = {
                            "bucket": bucket["Name"],
                            "key": item["Key"],
                            "etag": item["ETag"],
                            "content_type": stored.get("ContentType") or "application/octet-stream",
                            "metadata": stored.get("Metadata") or {},
                        }
                        written += 1
            for name in set(index) - seen:
                index.pop(name)
                (self.folder / "objects" / name).unlink(missing_ok=True)
            temporary = self.index_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(index))
            temporary.replace(self.index_path)
            return written

    def restore(self) -> int:
        """Put every mirrored object back (creating its bucket). Returns how many were restored."""
        restored = 0
        buckets: set[str] = set()
        for name, entry in self._index().items():
            path = self.folder / "objects" / name
            if not path.exists():
                continue
            if entry["bucket"] not in buckets:
                try:
                    self.client.create_bucket(Bucket=entry["bucket"])
                except self.client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                buckets.add(entry["bucket"])
            self.client.put_object(
                Bucket=entry["bucket"],
                Key=entry["key"],
                Body=path.read_bytes(),
                ContentType=entry["content_type"],
                Metadata=entry["metadata"],
            )
            restored += 1
        return restored

    def run(self, stop: threading.Event, every_seconds: float = 5.0) -> None:
        while not stop.wait(every_seconds):
            try:
                self.save()
            except Exception as exc:  # noqa: BLE001 - the next snapshot tries again
                log.warning("could not snapshot the embedded S3: %s", exc)
