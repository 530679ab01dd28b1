"""RQ jobs, declared once: each job function says its queue, timeout, retries, job id, status gate and
failure handler where it is defined, and is enqueued through itself (`ingest_document.enqueue(doc_id)`),
never through a dotted string written elsewhere.

    @job(queue="exams", timeout=lambda s: s.exam_job_timeout_seconds, job_id=lambda exam_id: f"exam-{exam_id}",
         gate=StatusGate("Exam", "exam_id", done=EXAM_DONE))
    def generate_exam(exam_id: str) -> dict[str, Any]: ...

    @generate_exam.on_failure
    def _generation_failed(exam_id: str, reason: str) -> None: ...

- The job keeps its module path (`aiteacher.exams.jobs.generate_exam`): the decorated object is what RQ
  imports and calls, so jobs already in Redis still resolve.
- The **status gate** runs before the job body, in a short transaction of its own: a job whose row is
  gone, or whose status says its work is done (or was given up), returns
  `{<key>: id, "status": ..., "skipped": True}` without running. (The body still handles its row
  vanishing after the gate looked.)
- **One failure callback** (`job_failed`) for every job: when RQ has no retry left (a crash, a timeout),
  it calls the job's own `on_failure(row_id, reason)`, retrying briefly while the database is away (the
  reconciler finishes the job if it stays away longer).
- Settings-dependent options (timeout, retries, intervals) are functions of the settings, read at enqueue
  time, so tests and deployments that change the settings are honoured.

A platform module: it imports no domain (the gate names its model; the job modules import this one).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

if TYPE_CHECKING:
    from types import TracebackType

    from redis import Redis
    from rq.job import Job as RQJob

    from aiteacher.config import Settings

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("aiteacher.jobs")
FAILURE_CALLBACK = "aiteacher.jobs.job_failed"
#: Every job, by the dotted path RQ stores (filled as the job modules are imported; the composition
#: layer's `reconcile.JOB_MODULES` lists them).
JOBS: dict[str, Job[Any, Any]] = {}


@dataclass(frozen=True)
class StatusGate:
    """Skip a job whose row (the primary key is the job's first argument) is gone or past the job.

    `done`: statuses that mean the work is finished or given up (skip). `only`: if given, the job runs
    only while the row is in one of these statuses. The row is read on the primary (a replica may not
    have the row a request just committed)."""

    model: str
    """A class name in `aiteacher.db.models` (named, so declaring a job imports no models)."""
    key: str
    """The id field of the skipped job's reply: `document_id`, `exam_id`..."""
    done: frozenset[str] = field(default_factory=frozenset)
    only: frozenset[str] | None = None

    def admits(self, status: str) -> bool:
        return status not in self.done and (self.only is None or status in self.only)

    def check(self, row_id: str) -> dict[str, Any] | None:
        """None when the job may run; otherwise the reply of the skipped job."""
        from aiteacher.db import models, transaction

        model = getattr(models, self.model)
        with transaction() as session:
            row = session.get(model, row_id)
            status = None if row is None else str(row.status)
        if status is None:
            return {self.key: row_id, "status": "missing", "skipped": True}
        if self.admits(status):
            return None
        return {self.key: row_id, "status": status, "skipped": True}


class Job(Generic[P, R]):
    """A job function with its RQ options. Calling it runs the gate, then the function (what RQ does);
    `.enqueue(*ids)` queues it."""

    def __init__(
        self,
        function: Callable[P, R],
        *,
        queue: str,
        queues: tuple[str, ...] = (),
        timeout: Callable[[Settings], int] | None = None,
        retries: Callable[[Settings], int] | None = None,
        retry_intervals: Callable[[Settings], list[int]] | None = None,
        job_id: Callable[..., str] | None = None,
        gate: StatusGate | None = None,
    ) -> None:
        self.function = function
        self.path = f"{function.__module__}.{function.__name__}"
        self.queue = queue
        self.queues = (queue, *queues)
        self._timeout = timeout
        self._retries = retries
        self._retry_intervals = retry_intervals
        self._job_id = job_id
        self.gate = gate
        self.failure_handler: Callable[[str, str], None] | None = None
        functools.update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.gate is not None and args:
            skipped = self.gate.check(str(args[0]))
            if skipped is not None:
                log.info("%s(%s) skipped: %s", self.function.__name__, args[0], skipped["status"])
                return cast(R, skipped)
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<job {self.path} on {'|'.join(self.queues)}>"

    def on_failure(self, handler: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """Decorate `handler(row_id, reason)`: what to record when the job fails for good."""
        self.failure_handler = handler
        return handler

    def failed(
        self,
        job: RQJob,
        connection: Redis | None,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """RQ failed this job: when no retry is left (timeout, crash), run the failure handler on its row.
        Recording needs the database, which may be the very thing that is down: it is retried briefly,
        and the reconciler finishes the job if the database stays away longer."""
        if (getattr(job, "retries_left", 0) or 0) > 0 or not job.args or self.failure_handler is None:
            return
        row_id = str(job.args[0])
        reason = "timed out" if exc_type is not None and "Timeout" in exc_type.__name__ else "failed unexpectedly"
        log.error("%s of %s %s: %s", self.function.__name__, row_id, reason, exc_value)
        from aiteacher.errors import ServiceUnavailable

        for delay in (0.5, 1.0, 2.0, None):
            try:
                self.failure_handler(row_id, reason)
                return
            except ServiceUnavailable:
                if delay is None:
                    log.error("could not record the failure of %s (database away); the reconciler will", row_id)
                    return
                time.sleep(delay)

    def job_id(self, *args: Any) -> str | None:
        """The RQ job id this job gets for these arguments (None: RQ picks one)."""
        return self._job_id(*args) if self._job_id is not None else None

    def options(self, settings: Settings | None = None) -> dict[str, Any]:
        """The RQ options of an enqueue: timeout (None: the queue's), retries and their intervals, callback."""
        if settings is None:
            from aiteacher.config import get_settings

            settings = get_settings()
        return {
            "timeout": self._timeout(settings) if self._timeout else None,
            "retries": self._retries(settings) if self._retries else None,
            "retry_intervals": self._retry_intervals(settings) if self._retry_intervals else None,
            "on_failure": FAILURE_CALLBACK if self.failure_handler is not None else None,
        }

    def enqueue(self, *args: Any, job_id: str | None = None, queue: str | None = None, unique: bool = False) -> str:
        """Queue the job with these (id-only) arguments; returns the RQ job id. `job_id` overrides the
        declared one (a re-index, a dedupe key); `queue` picks another of the job's queues."""
        from aiteacher.queue import enqueue

        queue = queue or self.queue
        if queue not in self.queues:
            raise ValueError(f"{self.path} runs on {self.queues}, not {queue!r}")
        return enqueue(queue, self.path, *args, job_id=job_id or self.job_id(*args), unique=unique, **self.options())


def job(
    *,
    queue: str,
    queues: tuple[str, ...] = (),
    timeout: Callable[[Settings], int] | None = None,
    retries: Callable[[Settings], int] | None = None,
    retry_intervals: Callable[[Settings], list[int]] | None = None,
    job_id: Callable[..., str] | None = None,
    gate: StatusGate | None = None,
) -> Callable[[Callable[P, R]], Job[P, R]]:
    """Declare an RQ job (see the module docstring). `queues`: other queues it may be sent to."""

    def declare(function: Callable[P, R]) -> Job[P, R]:
        declared = Job(
            function,
            queue=queue,
            queues=queues,
            timeout=timeout,
            retries=retries,
            retry_intervals=retry_intervals,
            job_id=job_id,
            gate=gate,
        )
        JOBS[declared.path] = declared
        return declared

    return declare


def _declared(path: str) -> Job[Any, Any] | None:
    found = JOBS.get(path)
    if found is None:  # a process that has not imported the job's module (the reconciler's cleanup)
        from rq.utils import import_attribute

        try:
            target = import_attribute(path)
        except (ImportError, ValueError, AttributeError):
            return None
        found = target if isinstance(target, Job) else None
    return found


def job_failed(
    job: RQJob,
    connection: Redis | None,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """The RQ failure callback of every job: hands the failure to the job it belongs to (`Job.failed`)."""
    declared = _declared(str(job.func_name))
    if declared is None:
        log.error("job %s (%s) failed and is no declared job: %s", job.id, job.func_name, exc_value)
        return
    declared.failed(job, connection, exc_type, exc_value, traceback)
