"""RQ jobs: enqueue by dotted path (after commit), and the workers.

Production runs `aiteacher worker` (a forking RQ worker per pod, scaled by KEDA on queue length).
`make dev` and the tests run `ThreadWorker`s inside the process that owns the embedded stores:
jobs run in a thread and a timer enforces the job timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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
            unique: bool = False, **kwargs: Any) -> str:
    """Enqueue `function` (a dotted path) with IDs only.

    A `job_id` alone does not stop a second run: rq overwrites the job and queues it again. With
    `unique=True` (rq >= 2.5, atomic in Redis) a job id that rq still holds, queued, running, finished
    (for `result_ttl`) or failed (for `failure_ttl`), is not enqueued again: the call returns that id.
    """
    from rq import Callback, Retry
    from rq.exceptions import DuplicateJobError

    from aiteacher.cache import redis_errors
    from aiteacher.config import get_settings

    settings = get_settings()
    retries = settings.job_max_retries if retries is None else retries
    if unique and not job_id:
        raise ValueError("unique=True needs a job_id")
    with redis_errors("The job queue"):
        try:
            job = get_queue(queue).enqueue_call(
                func=function, args=args, kwargs=kwargs, job_id=job_id,
                timeout=timeout or settings.ingest_job_timeout_seconds,
                retry=Retry(max=retries, interval=retry_intervals or 0) if retries else None,
                result_ttl=3600, failure_ttl=7 * 24 * 3600,
                on_failure=Callback(on_failure) if on_failure else None, unique=unique,
            )
        except DuplicateJobError:
            log.info("job %s is already known to rq: not enqueued again", job_id)
            return str(job_id)
    return str(job.id)


def worker_connection() -> Any:
    """Workers get their own Redis connection: RQ raises the socket timeout of the connection it is
    given to cover blocking dequeues, which must not leak into the fail-fast client requests use."""
    from redis import Redis

    from aiteacher.config import get_settings

    return Redis.from_url(get_settings().redis_url, health_check_interval=30)


def import_rq_in_this_thread() -> None:
    """Import every rq module the workers use, once, in the calling (main) thread.

    rq's modules import each other in a cycle (rq.worker -> rq.job -> ... -> rq.worker). Two threads
    importing them at the same time trip Python's import-deadlock detection, and one of them gets
    `ImportError: partially initialized module 'rq.worker'` (seen once in five `make dev` starts).
    Imported before any worker thread starts, they are only looked up from `sys.modules` afterwards.
    """
    import importlib

    for name in ("rq", "rq.job", "rq.queue", "rq.registry", "rq.timeouts", "rq.worker", "rq.scheduler",
                 "rq.command", "rq.results", "rq.executions", "rq.maintenance", "rq.suspension"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # an optional module of another rq version is fine; a broken import is not
                raise


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
    """`make dev`: N worker threads on every queue, stopped with the process.

    A worker that fails is rebuilt (new connection, new rq worker) after a pause; one that fails
    `max_failures` times in a row calls `on_fatal(message)`, so the owner can stop with a clear
    error instead of serving with nobody running the jobs.
    """

    def __init__(self, count: int, on_fatal: Callable[[str], None] | None = None, max_failures: int = 5,
                 pause_seconds: float = 0.5):
        self.count = count
        self.on_fatal = on_fatal
        self.max_failures = max_failures
        self.pause_seconds = pause_seconds
        self.restarts = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        import_rq_in_this_thread()
        for index in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"rq-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    def _loop(self) -> None:
        failures = 0

        def worked() -> None:
            nonlocal failures
            failures = 0

        while not self._stop.is_set():
            try:
                self._run_worker(worked)
                return
            except Exception as exc:
                failures += 1
                self.restarts += 1
                log.exception("worker %s failed (%d in a row); restarting it",
                              threading.current_thread().name, failures)
                if failures >= self.max_failures:
                    message = (f"rq worker {threading.current_thread().name} failed {failures} times in a row "
                               f"({type(exc).__name__}: {exc}); queued jobs would never run")
                    log.critical(message)
                    if self.on_fatal is not None:
                        self.on_fatal(message)
                    return
                self._stop.wait(self.pause_seconds)

    def _run_worker(self, worked: Callable[[], None]) -> None:
        # Short burst rounds: no blocking dequeue to interrupt on Ctrl-C, and the scheduler's due
        # retries are enqueued inline (no scheduler process forked from a process holding file locks).
        connection = worker_connection()
        try:
            worker = _thread_worker_class()(list(QUEUES), connection=connection)
            while not self._stop.is_set():
                worker.work(burst=True, with_scheduler=True, max_jobs=1, logging_level="WARNING")
                worked()
                self._stop.wait(0.5)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _measured_worker_class() -> type:
    """A forking Worker that times each job in the parent (the work horse's own metrics die with it)."""
    import time

    from rq import Worker

    from aiteacher import observability as obs

    class MeasuredWorker(Worker):
        def execute_job(self, job: Any, queue: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().execute_job(job, queue)
            finally:
                name = str(job.func_name).rsplit(".", 1)[-1]
                obs.JOB_DURATION.labels(queue.name, name).observe(time.perf_counter() - started)
                try:
                    failed = job.get_status(refresh=True) == "failed"
                except Exception:  # noqa: BLE001 - the job hash may be gone already (ttl 0)
                    failed = False
                if failed:
                    obs.JOB_FAILURES.labels(queue.name, name).inc()

    return MeasuredWorker


def run_worker(queues: list[str] | None = None, burst: bool = False) -> None:
    """`aiteacher worker`: a forking RQ worker (one job per work-horse process) with the scheduler, and
    Prometheus metrics (job duration, failures, queue depth) on WORKER_METRICS_PORT (0: none)."""
    import os

    from aiteacher import observability as obs
    from aiteacher.config import get_settings

    obs.configure_logging()
    port = get_settings().worker_metrics_port
    if port:
        from prometheus_client import start_http_server

        obs.register_queue_depth(QUEUES)
        start_http_server(port, registry=obs.REGISTRY)
    connection = worker_connection()
    worker = _measured_worker_class()(list(queues or QUEUES), connection=connection)
    worker.work(burst=burst, with_scheduler=True, logging_level=os.environ.get("LOG_LEVEL", "INFO").upper())
