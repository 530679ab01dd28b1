"""The reconciler: the database is the source of truth for documents and exams, the queue is not.

Work that has sat `queued` or `processing` (`generating` for exams) longer than RECONCILE_GRACE_SECONDS
with no live RQ job (Redis restarted empty, a work-horse was killed on every attempt, the failure
callback could not reach the database...) is enqueued again, or marked `failed` with a reason once its
attempts are spent. Every worker runs it (`aiteacher worker`, the dev server's threads); a Redis lock
elects one runner per round, and a round is idempotent anyway.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiteacher.enums import DOCUMENT_PENDING, EXAM_PENDING, ExamStatus

if TYPE_CHECKING:
    from aiteacher.db.models import Document, Exam

log = logging.getLogger("aiteacher.reconcile")
#: The modules that declare RQ jobs (`aiteacher.jobs.job`); a test checks the list is complete.
JOB_MODULES = ("aiteacher.curriculum.jobs", "aiteacher.exams.jobs", "aiteacher.tutor.jobs", "aiteacher.notifications")
#: What a worker's background thread (this reconciler) imports, loaded before it starts (`queue.run_worker`).
PRELOAD = (*JOB_MODULES, "aiteacher.curriculum.service", "aiteacher.exams.service")
LOCK_KEY = "aiteacher:reconcile:lock"
BATCH = 200


@dataclass
class Report:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    abandoned_checked: int = 0
    ran: bool = True


def max_attempts() -> int:
    """Job starts a document or exam gets in total, across retries and re-enqueues."""
    from aiteacher.config import get_settings

    return get_settings().job_max_retries + 1


def _stale_before() -> datetime:
    from aiteacher.config import get_settings

    return datetime.now(UTC) - timedelta(seconds=get_settings().reconcile_grace_seconds)


def _acquire(ttl_ms: int) -> str | None:
    from aiteacher.cache import get_redis

    token = secrets.token_hex(8)
    return token if get_redis().set(LOCK_KEY, token, nx=True, px=max(100, ttl_ms)) else None


def _release(token: str) -> None:
    from aiteacher.cache import get_redis

    # Only the holder deletes (compare-and-delete): a round that outlived its lock leaves the next one alone.
    get_redis().eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        LOCK_KEY,
        token,
    )


def reconcile_round(*, force: bool = False) -> Report:
    """One pass over stale documents and exams. Without `force`, only the lock holder runs it."""
    from aiteacher.config import get_settings
    from aiteacher.queue import requeue_abandoned, worker_connection

    token = None
    if not force:
        token = _acquire(int(get_settings().reconcile_interval_seconds * 900))
        if token is None:
            return Report(ran=False)
    try:
        report = Report()
        connection = worker_connection()
        try:
            report.abandoned_checked = requeue_abandoned(connection)
        finally:
            connection.close()
        _documents(report)
        _exams(report)
        from aiteacher.security.revocation import purge_expired

        purge_expired()
        if report.requeued or report.failed:
            log.warning("reconciler: re-queued %d, failed %d", len(report.requeued), len(report.failed))
        return report
    finally:
        if token:
            _release(token)


def _stale(model: type[Document] | type[Exam], statuses: tuple[str, ...]) -> list[tuple[str, int]]:
    """(id, attempts) of the oldest rows in `statuses` not touched since the grace period began."""
    from sqlalchemy import select

    from aiteacher.db import transaction

    with transaction(read_only=False) as session:
        rows = session.execute(
            select(model.id, model.attempts)
            .where(model.status.in_(statuses), model.updated_at < _stale_before())
            .order_by(model.updated_at)
            .limit(BATCH)
        ).all()
    return [(row[0], int(row[1] or 0)) for row in rows]


def _documents(report: Report) -> None:
    from aiteacher.curriculum.jobs import give_up, ingest_document, requeue_document
    from aiteacher.db.models import Document
    from aiteacher.queue import job_is_live

    for document_id, attempts in _stale(Document, DOCUMENT_PENDING):
        if job_is_live(str(ingest_document.job_id(document_id))):
            continue
        if attempts >= max_attempts():
            give_up(
                document_id,
                f"Ingestion gave up after {attempts} attempts (the worker kept failing or "
                "dying); upload the document again.",
            )
            report.failed.append(document_id)
        elif requeue_document(document_id):
            report.requeued.append(document_id)


def _exams(report: Report) -> None:
    from sqlalchemy import update

    from aiteacher.db import transaction
    from aiteacher.db.models import Exam, utcnow
    from aiteacher.exams.jobs import generate_exam
    from aiteacher.queue import discard_job, job_is_live

    for exam_id, attempts in _stale(Exam, EXAM_PENDING):
        job_id = str(generate_exam.job_id(exam_id))
        if job_is_live(job_id):
            continue
        with transaction() as session:
            if attempts >= max_attempts():
                session.execute(
                    update(Exam)
                    .where(Exam.id == exam_id, Exam.status.in_(EXAM_PENDING))
                    .values(
                        status=ExamStatus.FAILED,
                        updated_at=utcnow(),
                        error=f"Exam generation gave up after {attempts} attempts; try again.",
                    )
                )
                report.failed.append(exam_id)
                continue
            session.execute(
                update(Exam)
                .where(Exam.id == exam_id)
                .values(status=ExamStatus.QUEUED, attempts=Exam.attempts + 1, updated_at=utcnow())
            )
        discard_job(job_id)
        _enqueue_exam(exam_id)
        report.requeued.append(exam_id)


def _enqueue_exam(exam_id: str) -> None:
    from aiteacher.exams.jobs import generate_exam

    generate_exam.enqueue(exam_id)


def reconcile_forever(stop: threading.Event) -> None:
    """The dev server's reconciler thread: a round every RECONCILE_INTERVAL_SECONDS, errors logged."""
    from aiteacher.config import get_settings

    while not stop.is_set():
        try:
            reconcile_round()
        except Exception as exc:  # noqa: BLE001 - the database or Redis is away: next round
            log.warning("reconciler round failed: %s", exc)
        stop.wait(get_settings().reconcile_interval_seconds)
