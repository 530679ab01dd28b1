"""RQ jobs: enqueue by dotted path (after commit), and the workers.

Production runs `aiteacher worker` (a forking RQ worker per pod, scaled by KEDA on queue length), which
survives Redis restarts (it reconnects with backoff), re-queues abandoned jobs at start and runs the
reconciler. `make dev` and the tests run `ThreadWorker`s inside the process that owns the embedded
stores: jobs run in a thread and a timer enforces the job timeout.

Workers take queues in the order of QUEUES: API uploads (`ingest`) never wait behind a burst of bucket
events (`ingest-bulk`, last).
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from types import FrameType

    from redis import Redis
    from rq import Queue
    from rq.job import Job

QUEUES = ("ingest", "exams", "summaries", "notifications", "ingest-bulk")
log = logging.getLogger("aiteacher.queue")
HEARTBEAT_PREFIX = "aiteacher:worker:"
WORKER_PREFIX = "aw."  # names of `aiteacher worker` processes: aw.<host>.<pid>[.<start>]


def backoff_intervals(retries: int) -> list[int]:
    """Exponential backoff with jitter (base, 2x base, 4x base ... capped, each +-25 %): a job failing
    because the database or Redis is briefly away is retried after the outage, not four times inside it."""
    from aiteacher.config import get_settings

    settings = get_settings()
    base, cap = settings.job_retry_base_seconds, settings.job_retry_max_seconds
    return [max(0, round(min(cap, base * 2**attempt) * random.uniform(0.75, 1.25))) for attempt in range(retries)]


def default_timeout(queue: str) -> int:
    """The job timeout (seconds) of a job enqueued on `queue` without one: each queue has its own setting."""
    from aiteacher.config import get_settings

    settings = get_settings()
    timeouts = {
        "ingest": settings.ingest_job_timeout_seconds,
        "ingest-bulk": settings.ingest_job_timeout_seconds,
        "exams": settings.exam_job_timeout_seconds,
        "summaries": settings.summary_job_timeout_seconds,
        "notifications": settings.notification_job_timeout_seconds,
    }
    if queue not in timeouts:
        raise ValueError(f"unknown queue {queue!r}")
    return timeouts[queue]


def get_queue(name: str) -> Queue:
    from rq import Queue

    from aiteacher.cache import get_redis

    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis())


def enqueue(
    queue: str,
    function: str,
    *args: Any,
    job_id: str | None = None,
    timeout: int | None = None,
    retries: int | None = None,
    retry_intervals: list[int] | None = None,
    on_failure: str | None = None,
    unique: bool = False,
    **kwargs: Any,
) -> str:
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
                func=function,
                args=args,
                kwargs=kwargs,
                job_id=job_id,
                timeout=timeout or default_timeout(queue),
                retry=Retry(max=retries, interval=retry_intervals or backoff_intervals(retries)) if retries else None,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
                on_failure=Callback(on_failure) if on_failure else None,
                unique=unique,
            )
        except DuplicateJobError:
            log.info("job %s is already known to rq: not enqueued again", job_id)
            return str(job_id)
    return str(job.id)


def job_is_live(job_id: str) -> bool:
    """Is an RQ job waiting, scheduled or running for this id? (False when Redis lost it, or it failed.)"""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    from aiteacher.cache import get_redis

    try:
        job = Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in (
        JobStatus.QUEUED,
        JobStatus.STARTED,
        JobStatus.SCHEDULED,
        JobStatus.DEFERRED,
    )


def discard_job(job_id: str) -> None:
    """Forget a dead job (failed, or lost its worker) so the same id can be enqueued afresh."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job

    from aiteacher.cache import get_redis

    try:
        Job.fetch(job_id, connection=get_redis()).delete(remove_from_queue=True)
    except (NoSuchJobError, InvalidJobOperation):
        pass  # gone already, or deleted by a concurrent discard between the fetch and the delete


def requeue_abandoned(connection: Redis) -> int:
    """Jobs whose worker died go back to their queue, or fail (running their failure callback) when no
    retry is left: what RQ's maintenance does for expired started-registry entries, run now, plus the
    jobs of `aiteacher worker`s whose heartbeat key has expired (seconds after they died, where RQ's own
    entry would wait for the job's heartbeat TTL). Returns how many jobs were found abandoned."""
    from rq import Queue
    from rq.utils import current_timestamp

    abandoned = 0
    for name in QUEUES:
        queue = Queue(name, connection=connection)
        registry = queue.started_job_registry
        expired = set(registry.get_expired_job_ids(current_timestamp()))
        # redis-py types one signature for its sync and asyncio clients: this sync one returns bytes members.
        for member in cast("list[bytes]", connection.zrange(registry.key, 0, -1)):
            job_id = member.decode().split(":", 1)[0]
            job = queue.fetch_job(job_id)
            owner = (job.worker_name or "") if job is not None else ""
            if owner.startswith(WORKER_PREFIX) and not connection.exists(HEARTBEAT_PREFIX + owner.rsplit(".", 1)[0]):
                connection.zadd(registry.key, {member: 1}, xx=True)  # expired: cleanup() takes it
                expired.add(job_id)
        abandoned += len(expired)
        if expired:
            registry.cleanup()
    return abandoned


def worker_connection() -> Redis:
    """Workers get their own Redis connection: RQ raises the socket timeout of the connection it is
    given to cover blocking dequeues, which must not leak into the fail-fast client requests use."""
    from redis import Redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    from aiteacher.cache import driver_info
    from aiteacher.config import get_settings

    return Redis.from_url(
        get_settings().redis_url,
        health_check_interval=30,
        driver_info=driver_info(),
        retry=Retry(ExponentialBackoff(cap=2, base=0.1), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def import_rq_in_this_thread() -> None:
    """Import every rq module the workers use, once, in the calling (main) thread.

    rq's modules import each other in a cycle (rq.worker -> rq.job -> ... -> rq.worker). Two threads
    importing them at the same time trip Python's import-deadlock detection, and one of them gets
    `ImportError: partially initialized module 'rq.worker'` (seen once in five `make dev` starts).
    Imported before any worker thread starts, they are only looked up from `sys.modules` afterwards.
    """
    import importlib

    for name in (
        "rq",
        "rq.job",
        "rq.queue",
        "rq.registry",
        "rq.timeouts",
        "rq.worker",
        "rq.scheduler",
        "rq.command",
        "rq.results",
        "rq.executions",
        "rq.maintenance",
        "rq.suspension",
    ):
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


def _enqueue_scheduled_now(connection: Redis, queues: tuple[str, ...]) -> int:
    """Move every scheduled job (retries waiting out their backoff) to its queue at once."""
    from rq import Queue

    moved = 0
    for name in queues:
        queue = Queue(name, connection=connection)
        registry = queue.scheduled_job_registry
        for job_id in registry.get_job_ids():
            job = queue.fetch_job(job_id)
            registry.remove(job_id)
            if job is not None:
                queue._enqueue_job(job)
                moved += 1
    return moved


def run_burst(queues: tuple[str, ...] = QUEUES) -> int:
    """Run every queued job, and the retries it schedules (without waiting out their backoff), to
    completion in this thread (tests and benchmarks)."""
    connection = worker_connection()
    worker = _thread_worker_class()(list(queues), connection=connection)
    executed = 0
    try:
        while any(get_queue(name).count for name in queues) or _enqueue_scheduled_now(connection, queues):
            worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
            executed += 1
            if executed > 50:
                break
    finally:
        connection.close()
    return executed


class WorkerThreads:
    """`make dev`: N worker threads on every queue, plus the reconciler, stopped with the process.

    A worker that fails is rebuilt (new connection, new rq worker) after a pause; one that fails
    `max_failures` times in a row calls `on_fatal(message)`, so the owner can stop with a clear
    error instead of serving with nobody running the jobs.
    """

    def __init__(
        self,
        count: int,
        on_fatal: Callable[[str], None] | None = None,
        max_failures: int = 5,
        pause_seconds: float = 0.5,
    ):
        self.count = count
        self.on_fatal = on_fatal
        self.max_failures = max_failures
        self.pause_seconds = pause_seconds
        self.restarts = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reconciler: threading.Thread | None = None

    def start(self) -> None:
        import_rq_in_this_thread()
        from aiteacher.reconcile import reconcile_forever

        for index in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"rq-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._reconciler = threading.Thread(
            target=reconcile_forever, args=(self._stop,), name="reconciler", daemon=True
        )
        self._reconciler.start()

    def alive(self) -> int:
        """Worker threads still running (the reconciler is not counted: it runs no jobs)."""
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
                log.exception(
                    "worker %s failed (%d in a row); restarting it", threading.current_thread().name, failures
                )
                if failures >= self.max_failures:
                    message = (
                        f"rq worker {threading.current_thread().name} failed {failures} times in a row "
                        f"({type(exc).__name__}: {exc}); queued jobs would never run"
                    )
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
        for thread in [*self._threads, *([self._reconciler] if self._reconciler else [])]:
            thread.join(timeout=10)


def write_heartbeat(connection: Redis, name: str, state: str, ttl: int) -> None:
    import json
    import socket

    connection.set(
        f"{HEARTBEAT_PREFIX}{name}",
        json.dumps({"name": name, "host": socket.gethostname(), "state": state, "at": round(time.time(), 3)}),
        ex=ttl,
    )


def worker_name() -> str:
    import os
    import socket

    return f"{WORKER_PREFIX}{socket.gethostname()}.{os.getpid()}"


def _preload_for_background() -> None:
    """Import what the background thread uses before it starts: a thread importing a module while RQ
    forks a work-horse leaves the child holding that module's import lock forever (a job hung at its
    first import was seen)."""
    import importlib

    from aiteacher import reconcile

    for module in (
        *reconcile.PRELOAD,
        "aiteacher.security.revocation",
        "aiteacher.db.models",
        "rq.job",
        "rq.registry",
        "rq.utils",
        "sqlalchemy.dialects.sqlite",
        "sqlalchemy.dialects.postgresql",
    ):
        importlib.import_module(module)


def _background(stop: threading.Event, name: str) -> None:
    """The worker's side duties, in a thread: the heartbeat key (for `aiteacher worker-health`) and the
    reconciler. Redis being away is logged and retried; it never ends the thread."""
    from aiteacher.config import get_settings
    from aiteacher.reconcile import reconcile_round

    settings = get_settings()
    interval, beat = settings.reconcile_interval_seconds, settings.worker_heartbeat_seconds
    connection = worker_connection()
    next_reconcile = 0.0
    while not stop.is_set():
        try:
            write_heartbeat(connection, name, "running", ttl=max(1, round(beat * 3)))
        except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
            log.warning("worker heartbeat failed: %s", exc)
        if time.monotonic() >= next_reconcile:
            next_reconcile = time.monotonic() + interval
            try:
                reconcile_round()
            except Exception as exc:  # noqa: BLE001 - Redis or the database away: next round
                log.warning("reconciler round failed: %s", exc)
        stop.wait(min(beat, interval))


def _measured_worker_class() -> type:
    """A forking Worker that times each job in the parent (the work horse's own metrics die with it)."""
    import time

    from rq import Worker

    from aiteacher import observability as obs

    class MeasuredWorker(Worker):
        def execute_job(self, job: Job, queue: Queue) -> None:
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


def _stoppable_worker_class() -> type:
    class StoppableWorker(_measured_worker_class()):  # type: ignore[misc]
        """Remembers a SIGTERM/SIGINT, so a stop on request is told apart from RQ quitting on a Redis error."""

        stop_signalled = False

        def bootstrap(self, *args: Any, **kwargs: Any) -> None:
            # RQ installs its own handlers only after bootstrap and the scheduler's start. A SIGTERM in
            # between (a pod stopped while it starts) would kill the process registered, holding the
            # scheduler locks: here it is only noted, and the work loop stops at its first turn.
            _on_stop_signals(self._stop_before_loop)
            super().bootstrap(*args, **kwargs)

        def _stop_before_loop(self, signum: int, frame: FrameType | None) -> None:
            self.stop_signalled = True
            self._stop_requested = True

        def request_stop(self, signum: int, frame: FrameType | None) -> None:
            self.stop_signalled = True
            super().request_stop(signum, frame)

    return StoppableWorker


def _on_stop_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _leave(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_worker(queues: list[str] | None = None, burst: bool = False) -> None:
    """`aiteacher worker`: a forking RQ worker (one job per work-horse process) with the scheduler, and
    Prometheus metrics (job duration, failures, queue depth) on WORKER_METRICS_PORT (0: none).

    It outlives Redis: when the connection drops (RQ's loop then quits), it reconnects with exponential
    backoff and jitter and works on. At every (re)start it first re-queues jobs abandoned by dead workers."""
    import os

    from redis.exceptions import RedisError

    from aiteacher import observability as obs
    from aiteacher.config import get_settings

    obs.configure_logging()
    stoppable_worker = _stoppable_worker_class()
    settings = get_settings()
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        obs.register_queue_depth(QUEUES)
        start_http_server(settings.worker_metrics_port, registry=obs.REGISTRY)
    name = worker_name()
    _preload_for_background()
    stop = threading.Event()
    side = threading.Thread(target=_background, args=(stop, name), name="worker-background", daemon=True)
    side.start()
    delay = 0.5
    # Outside RQ's loop nothing is registered: a stop signal leaves at once, also while Redis is away.
    _on_stop_signals(_leave)
    try:
        while True:
            connection = worker_connection()
            worker = None
            try:
                connection.ping()
                requeue_abandoned(connection)
                worker = stoppable_worker(
                    list(queues or QUEUES),
                    connection=connection,
                    name=f"{name}.{int(time.time())}",
                    maintenance_interval=settings.worker_maintenance_seconds,
                )
                try:
                    worker.work(
                        burst=burst, with_scheduler=True, logging_level=os.environ.get("LOG_LEVEL", "INFO").upper()
                    )
                finally:
                    _on_stop_signals(_leave)  # RQ's own handler would ask Redis, which may be why its loop quit
                if burst or worker.stop_signalled:
                    return
                connection.ping()  # RQ quit on its own: find out whether Redis is the reason
                delay = 0.5
            except RedisError as exc:
                if worker is not None and worker.stop_signalled:
                    return  # stopped while Redis was away: its registration expires with its TTL
                log.warning("Redis unavailable (%s); reconnecting in %.1f s", exc, delay)
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 30.0)
            finally:
                connection.close()
    finally:
        stop.set()
        side.join(timeout=5)
        try:
            connection = worker_connection()
            connection.delete(f"{HEARTBEAT_PREFIX}{name}")
            connection.close()
        except RedisError:
            pass


def worker_health(max_age_seconds: float | None = None) -> tuple[bool, list[dict[str, Any]]]:
    """`aiteacher worker-health`: (healthy?, heartbeats). Healthy when Redis answers and a worker on this
    host beat within the last MAX_AGE (default: three heartbeats)."""
    import json
    import socket

    from aiteacher.config import get_settings

    limit = max_age_seconds or get_settings().worker_heartbeat_seconds * 3
    connection = worker_connection()
    try:
        beats = []
        for key in connection.scan_iter(match=f"{HEARTBEAT_PREFIX}*", count=500):
            raw = connection.get(key)
            if raw:
                beats.append(json.loads(raw))
    finally:
        connection.close()
    host = socket.gethostname()
    fresh = [beat for beat in beats if beat.get("host") == host and time.time() - float(beat["at"]) <= limit]
    return bool(fresh), beats
