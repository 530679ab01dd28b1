"""RQ jobs: enqueue by dotted path (after commit), and the workers.

Production runs `aiteacher worker` (a forking RQ worker per pod, scaled by KEDA on queue length).
`make dev` and the tests run `ThreadWorker`s inside the process that owns the embedded stores:
jobs run in a thread and a timer enforces the job timeout.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

QUEUES = ("ingest", "exams", "summaries", "notifications")
log = logging.getLogger("aiteacher.queue")


def get_queue(name: str) -> Any:
    from rq import Queue

    from aiteacher.cache import get_redis

    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis())


def enqueue(queue: str, function: str, *args: Any, job_id: str | None = None, timeout: int | None = None,
            retries: int | None = None, retry_intervals: list[int] | None = None, on_failure: str | None = None,
            **kwargs: Any) -> str:
    """Enqueue `function` (a dotted path) with IDs only. A job id makes enqueueing idempotent."""
    from rq import Callback, Retry

    from aiteacher.cache import redis_errors
    from aiteacher.config import get_settings

    settings = get_settings()
    retries = settings.job_max_retries if retries is None else retries
    with redis_errors("The job queue"):
        job = get_queue(queue).enqueue_call(
            func=function, args=args, kwargs=kwargs, job_id=job_id,
            timeout=timeout or settings.ingest_job_timeout_seconds,
            retry=Retry(max=retries, interval=retry_intervals or 0) if retries else None,
            result_ttl=3600, failure_ttl=7 * 24 * 3600,
            on_failure=Callback(on_failure) if on_failure else None,
        )
    return str(job.id)


def worker_connection() -> Any:
    """Workers get their own Redis connection: RQ raises the socket timeout of the connection it is
    given to cover blocking dequeues, which must not leak into the fail-fast client requests use."""
    from redis import Redis

    from aiteacher.config import get_settings

    return Redis.from_url(get_settings().redis_url, health_check_interval=30)


def _thread_worker_class() -> type:
    from rq.timeouts import TimerDeathPenalty
    from rq.worker import SimpleWorker

    class ThreadWorker(SimpleWorker):
        """Runs jobs in the calling thread; a timer, not SIGALRM, enforces job timeouts."""

        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:  # signals belong to the main thread
            pass

        # No command listener (pub/sub thread) per short-lived burst worker: stopping one waits up to a
        # second. In-process workers are stopped by the process that owns them, not by `rq` commands.
        def subscribe(self) -> None:
            pass

        def unsubscribe(self) -> None:
            pass

    return ThreadWorker


def run_burst(queues: tuple[str, ...] = QUEUES) -> int:
    """Run every queued job (and retries it schedules at once) to completion in this thread."""
    connection = worker_connection()
    worker = _thread_worker_class()(list(queues), connection=connection)
    executed = 0
    try:
        while any(get_queue(name).count for name in queues):
            worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
            executed += 1
            if executed > 50:
                break
    finally:
        connection.close()
    return executed


class WorkerThreads:
    """`make dev`: N worker threads on every queue, stopped with the process."""

    def __init__(self, count: int):
        self.count = count
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"rq-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self) -> None:
        # Short burst rounds: no blocking dequeue to interrupt on Ctrl-C, and the scheduler's due
        # retries are enqueued inline (no scheduler process forked from a process holding file locks).
        worker = _thread_worker_class()(list(QUEUES), connection=worker_connection())
        while not self._stop.is_set():
            try:
                worker.work(burst=True, with_scheduler=True, max_jobs=1, logging_level="WARNING")
            except Exception:
                log.exception("worker loop error")
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def run_worker(queues: list[str] | None = None, burst: bool = False) -> None:
    """`aiteacher worker`: a forking RQ worker (one job per work-horse process) with the scheduler."""
    from rq import Worker

    connection = worker_connection()
    worker = Worker(list(queues or QUEUES), connection=connection)
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
