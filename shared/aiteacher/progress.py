"""Progress of long jobs (document ingestion, exam generation), for pollers and for the log.

A job calls `Tracker.update(stage, done, total)` as it goes; the latest value sits in Redis under
`progress:<kind>:<id>` (one small string, expiring), and views read it with `read`. Progress is advisory:
a Redis error never fails the job or the read. Writes are throttled (a stage change, the last unit, or at
most one every `WRITE_EVERY` seconds), and so are the log lines `make dev` and `aiteacher worker` print.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Final

log = logging.getLogger("aiteacher.progress")
TTL_SECONDS: Final = 24 * 3600
WRITE_EVERY: Final = 0.5
LOG_EVERY: Final = 5.0


def _key(kind: str, job_id: str) -> str:
    return f"progress:{kind}:{job_id}"


class Tracker:
    """The progress of one job. Not shared between threads (one job runs in one thread)."""

    def __init__(self, kind: str, job_id: str) -> None:
        self.kind, self.job_id = kind, job_id
        self._stage: str | None = None
        self._written = 0.0
        self._logged = 0.0

    def update(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        changed = stage != self._stage
        last = done >= total
        if changed or last or now - self._written >= WRITE_EVERY:
            self._written = now
            _write(self.kind, self.job_id, {"stage": stage, "done": done, "total": total})
        if changed or (last and total > 1) or now - self._logged >= LOG_EVERY:
            self._logged = now
            log.info("%s %s: %s %d/%d", self.kind, self.job_id, stage, done, total)
        self._stage = stage

    def clear(self) -> None:
        from aiteacher import cache

        cache.forget(_key(self.kind, self.job_id))  # advisory state: the job's outcome is what counts


def _write(kind: str, job_id: str, value: dict[str, Any]) -> None:
    from aiteacher.cache import set_json

    set_json(_key(kind, job_id), value, TTL_SECONDS)


def read(kind: str, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The recorded progress of the given jobs (one round trip); jobs without a record are absent."""
    from aiteacher.cache import get_many_json

    ids = list(job_ids)
    values = get_many_json([_key(kind, job_id) for job_id in ids])
    return {job_id: value for job_id, value in zip(ids, values, strict=True) if isinstance(value, dict)}
