"""The same job id enqueued twice runs once (rq's atomic `unique=True`), so notification dedupe keys hold."""

from __future__ import annotations

import time

import pytest

from tests.helpers import run_jobs

RUNS: list[str] = []


def remember(marker: str) -> None:
    RUNS.append(marker)


def _ran(marker: str) -> int:
    return sum(1 for run in RUNS if run == marker)


def test_a_unique_job_id_enqueued_twice_runs_once() -> None:
    from aiteacher.queue import enqueue

    marker = f"unique-{time.time_ns()}"
    first = enqueue("notifications", f"{__name__}.remember", marker, job_id=marker, unique=True, retries=0)
    second = enqueue("notifications", f"{__name__}.remember", marker, job_id=marker, unique=True, retries=0)
    assert first == second == marker
    run_jobs()
    assert _ran(marker) == 1
    # Finished (kept for result_ttl): a later duplicate is still not run again.
    enqueue("notifications", f"{__name__}.remember", marker, job_id=marker, unique=True, retries=0)
    run_jobs()
    assert _ran(marker) == 1


def test_without_unique_rq_runs_the_same_job_id_twice() -> None:
    """What the dedupe relied on before: a job id alone is no guard (rq overwrites and queues it again)."""
    from aiteacher.queue import enqueue

    marker = f"plain-{time.time_ns()}"
    enqueue("notifications", f"{__name__}.remember", marker, job_id=marker, retries=0)
    enqueue("notifications", f"{__name__}.remember", marker, job_id=marker, retries=0)
    run_jobs()
    assert _ran(marker) == 2


def test_unique_without_a_job_id_is_refused() -> None:
    from aiteacher.queue import enqueue

    with pytest.raises(ValueError, match="job_id"):
        enqueue("notifications", f"{__name__}.remember", "x", unique=True)


def test_a_notification_with_the_same_dedupe_key_is_queued_once() -> None:
    from aiteacher.notifications import queue_notification
    from aiteacher.queue import get_queue

    run_jobs()  # an empty queue to count from
    key = f"doc-{time.time_ns()}"
    queue = get_queue("notifications")
    before = queue.count
    queue_notification(["1"], "Ready", "Your document is ready", "document", dedupe_key=key)
    queue_notification(["1"], "Ready", "Your document is ready", "document", dedupe_key=key)
    assert queue.count - before == 1
    run_jobs()
