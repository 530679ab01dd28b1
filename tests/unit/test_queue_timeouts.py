"""Each queue has its own default job timeout (from settings), not the ingest timeout for every queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from aiteacher.queue import QUEUES


@pytest.fixture
def timeouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    from aiteacher.config import reset_caches

    values = {
        "INGEST_JOB_TIMEOUT_SECONDS": 601,
        "EXAM_JOB_TIMEOUT_SECONDS": 901,
        "SUMMARY_JOB_TIMEOUT_SECONDS": 121,
        "NOTIFICATION_JOB_TIMEOUT_SECONDS": 61,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))
    reset_caches()
    yield {"ingest": 601, "ingest-bulk": 601, "exams": 901, "summaries": 121, "notifications": 61}
    monkeypatch.undo()
    reset_caches()


def test_every_queue_has_its_own_default_timeout(timeouts: dict[str, int]) -> None:
    from aiteacher.queue import default_timeout

    assert set(timeouts) == set(QUEUES)
    assert {queue: default_timeout(queue) for queue in QUEUES} == timeouts


def test_a_job_enqueued_without_a_timeout_gets_its_queue_default(timeouts: dict[str, int]) -> None:
    from rq.job import Job

    from aiteacher.cache import get_redis
    from aiteacher.queue import enqueue, get_queue

    for queue in QUEUES:
        job_id = enqueue(queue, "builtins.print", "timeout-probe", job_id=f"probe-{uuid.uuid4().hex}", retries=0)
        job = Job.fetch(job_id, connection=get_redis())
        try:
            assert job.timeout == timeouts[queue], queue
        finally:
            get_queue(queue).remove(job_id)
            job.delete()


def test_an_explicit_timeout_wins_over_the_queue_default(timeouts: dict[str, int]) -> None:
    from rq.job import Job

    from aiteacher.cache import get_redis
    from aiteacher.queue import enqueue, get_queue

    job_id = enqueue("summaries", "builtins.print", job_id=f"probe-{uuid.uuid4().hex}", retries=0, timeout=33)
    job = Job.fetch(job_id, connection=get_redis())
    try:
        assert job.timeout == 33
    finally:
        get_queue("summaries").remove(job_id)
        job.delete()


def test_an_unknown_queue_has_no_default_timeout() -> None:
    from aiteacher.queue import default_timeout

    with pytest.raises(ValueError, match="unknown queue"):
        default_timeout("nope")
