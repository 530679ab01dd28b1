"""The job helper (`aiteacher.jobs`): every RQ job declares its queue, timeout, retries, job id, status gate
and failure handler once, is enqueued through itself, and fails through one RQ callback."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import bearer, hierarchy, make_pdf, place, run_jobs, signed_in, upload

EXPECTED_JOBS = {
    "aiteacher.curriculum.jobs.ingest_document",
    "aiteacher.exams.jobs.generate_exam",
    "aiteacher.exams.jobs.grade_attempt",
    "aiteacher.tutor.jobs.summarize_session",
    "aiteacher.notifications.deliver",
    "aiteacher.notifications.deliver_push",
}


def registered() -> dict:
    """Every declared job: the job modules the composition layer lists, imported."""
    import importlib

    from aiteacher import jobs
    from aiteacher.reconcile import JOB_MODULES

    for module in JOB_MODULES:
        importlib.import_module(module)
    return dict(jobs.JOBS)


@pytest.fixture
def settings_override(monkeypatch):
    from aiteacher.config import get_settings

    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def _rq_job(job_id: str):
    from rq.job import Job

    from aiteacher.cache import get_redis

    return Job.fetch(job_id, connection=get_redis())


def _upload(client, admin_token: str, text: str) -> tuple[dict, str]:
    academic = signed_in(client, "academic", admin_token)
    place(client, academic, hierarchy(client)[0], 2)
    response = upload(client, academic, make_pdf([[text], ["More about " + text]]), course="job-helper")
    assert response.status_code == 202, response.text
    return academic, response.json()["document_id"]


def _document(client, admin_token: str, document_id: str) -> dict:
    response = client.get(f"/documents/{document_id}", headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    return response.json()


def test_every_job_module_is_registered_and_every_job_keeps_its_rq_path() -> None:
    from rq.utils import import_attribute

    from aiteacher.jobs import FAILURE_CALLBACK, Job, job_failed

    jobs = registered()
    assert set(jobs) == EXPECTED_JOBS
    # Every module that declares a job is listed (the worker preloads them; this test imports them).
    import aiteacher
    from aiteacher.reconcile import JOB_MODULES

    package = Path(aiteacher.__file__).parent
    declaring = {
        "aiteacher." + ".".join(path.relative_to(package).with_suffix("").parts)
        for path in package.rglob("*.py")
        if "\n@job(" in path.read_text(encoding="utf-8")
    }
    assert declaring == set(JOB_MODULES)
    for path, declared in jobs.items():
        assert isinstance(declared, Job) and declared.path == path
        assert import_attribute(path) is declared  # what a worker resolves, for new and in-flight jobs alike
    assert import_attribute(FAILURE_CALLBACK) is job_failed
    # Jobs enqueued before the helper name their old callbacks: those still resolve, to their job's handler.
    for old, owner in (
        ("aiteacher.curriculum.jobs.ingest_failed", "aiteacher.curriculum.jobs.ingest_document"),
        ("aiteacher.exams.jobs.generation_failed", "aiteacher.exams.jobs.generate_exam"),
        ("aiteacher.exams.jobs.grading_failed", "aiteacher.exams.jobs.grade_attempt"),
    ):
        assert import_attribute(old) == jobs[owner].failed


def test_each_job_gets_its_own_queue_timeout_retries_and_failure_callback(settings_override) -> None:
    from aiteacher.jobs import FAILURE_CALLBACK, job_failed

    settings_override(
        INGEST_JOB_TIMEOUT_SECONDS="301",
        EXAM_JOB_TIMEOUT_SECONDS="302",
        SUMMARY_JOB_TIMEOUT_SECONDS="303",
        NOTIFICATION_JOB_TIMEOUT_SECONDS="304",
        JOB_MAX_RETRIES="2",
        NOTIFICATION_RETRY_INTERVALS="[1,2,3,4]",
    )
    jobs = registered()
    expected = {
        # path: (queue, timeout, retries, failure callback)
        "aiteacher.curriculum.jobs.ingest_document": ("ingest", 301, 2, FAILURE_CALLBACK),
        "aiteacher.exams.jobs.generate_exam": ("exams", 302, 2, FAILURE_CALLBACK),
        "aiteacher.exams.jobs.grade_attempt": ("exams", 302, 2, FAILURE_CALLBACK),
        "aiteacher.tutor.jobs.summarize_session": ("summaries", 303, 2, None),
        "aiteacher.notifications.deliver": ("notifications", 304, 4, None),
        "aiteacher.notifications.deliver_push": ("notifications", 304, 4, None),
    }
    for path, (queue, timeout, retries, callback) in expected.items():
        declared = jobs[path]
        probe = f"probe-{uuid.uuid4().hex}"
        args = ([probe], "subject", "body", "probe") if declared.queue == "notifications" else (probe,)
        job_id = declared.enqueue(*args, job_id=probe)
        try:
            rq_job = _rq_job(job_id)
            assert (rq_job.origin, rq_job.timeout, rq_job.retries_left) == (queue, timeout, retries), path
            assert rq_job.failure_callback is (job_failed if callback else None), path
            assert rq_job.func_name == path
        finally:
            _rq_job(job_id).delete(remove_from_queue=True)
    # Declared job ids: the reconciler and the enqueuer agree on them.
    assert jobs["aiteacher.curriculum.jobs.ingest_document"].job_id("d1") == "ingest-d1"
    assert jobs["aiteacher.exams.jobs.generate_exam"].job_id("e1") == "exam-e1"
    assert jobs["aiteacher.exams.jobs.grade_attempt"].job_id("a1") == "grade-a1"


def test_a_job_can_only_go_to_its_own_queues() -> None:
    from aiteacher.curriculum.jobs import ingest_document
    from aiteacher.exams.jobs import generate_exam

    with pytest.raises(ValueError, match="runs on"):
        generate_exam.enqueue("e1", queue="ingest")
    job_id = ingest_document.enqueue(f"probe-{uuid.uuid4().hex}", queue="ingest-bulk")
    try:
        assert _rq_job(job_id).origin == "ingest-bulk"
    finally:
        _rq_job(job_id).delete(remove_from_queue=True)


def test_a_job_whose_row_is_done_is_skipped_by_its_status_gate(client, admin_token) -> None:
    from aiteacher.curriculum.jobs import ingest_document
    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    run_jobs()
    _, document_id = _upload(client, admin_token, f"Gated material {time.time_ns()} about tries.")
    run_jobs()
    assert _document(client, admin_token, document_id)["status"] == "ready"
    with transaction(read_only=True) as session:
        attempts = session.get(Document, document_id).attempts

    # Called directly (as RQ calls it) and through a worker: the gate answers, the body never runs.
    assert ingest_document(document_id) == {"document_id": document_id, "status": "ready", "skipped": True}
    job_id = ingest_document.enqueue(document_id, job_id=f"again-{document_id}")
    run_jobs()
    assert _rq_job(job_id).return_value() == {"document_id": document_id, "status": "ready", "skipped": True}
    with transaction(read_only=True) as session:
        assert session.get(Document, document_id).attempts == attempts  # no new attempt was counted
    assert ingest_document("no-such-document") == {
        "document_id": "no-such-document",
        "status": "missing",
        "skipped": True,
    }


def test_the_grading_gate_runs_only_while_an_attempt_is_grading() -> None:
    from aiteacher.exams.jobs import grade_attempt

    gate = grade_attempt.gate
    assert gate is not None
    assert gate.admits("grading") and not gate.admits("graded") and not gate.admits("in_progress")


def test_a_failing_job_marks_its_document_failed_through_the_one_callback(
    client, admin_token, settings_override, monkeypatch
) -> None:
    import aiteacher.ingestion.extractors as extractors
    from aiteacher.jobs import job_failed

    run_jobs()
    settings_override(JOB_MAX_RETRIES="0")

    def crash(*_args, **_kwargs):
        raise RuntimeError("the extractor crashed")

    monkeypatch.setattr(extractors, "extract_document", crash)
    _, document_id = _upload(client, admin_token, f"Crashing material {time.time_ns()}.")
    run_jobs()
    document = _document(client, admin_token, document_id)
    assert document["status"] == "failed"
    assert "Processing failed unexpectedly" in document["error"]
    assert _rq_job(f"ingest-{document_id}").failure_callback is job_failed


def test_a_failing_exam_job_marks_its_exam_failed_through_the_one_callback(
    client, admin_token, settings_override, monkeypatch
) -> None:
    import aiteacher.exams.blueprint as blueprint
    from aiteacher.jobs import job_failed

    run_jobs()
    settings_override(JOB_MAX_RETRIES="0")
    academic, _ = _upload(client, admin_token, f"Exam material {time.time_ns()} about heaps and tries.")
    run_jobs()

    def crash(*_args, **_kwargs):
        raise RuntimeError("retrieval crashed")

    monkeypatch.setattr(blueprint, "spread_passages", crash)
    response = client.post(
        "/generate", headers=academic["headers"], json={"num_mcq": 1, "num_theory": 0, "course": "job-helper"}
    )
    assert response.status_code == 202, response.text
    exam_id = response.json()["exam_id"]
    run_jobs()
    assert client.get(f"/exams/{exam_id}", headers=academic["headers"]).json()["status"] == "failed"
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam

    with transaction(read_only=True) as session:
        assert "Exam generation failed" in (session.get(Exam, exam_id).error or "")
    assert _rq_job(f"exam-{exam_id}").failure_callback is job_failed


def test_the_one_callback_leaves_a_job_with_retries_left_alone() -> None:
    from aiteacher.jobs import job, job_failed

    handled: list[tuple[str, str]] = []

    @job(queue="notifications")
    def probe(row_id: str) -> None:
        raise AssertionError("not run")

    probe.on_failure(lambda row_id, reason: handled.append((row_id, reason)))

    class Failed:
        func_name = probe.path
        id = "probe"
        args = ("row-1",)
        retries_left = 1

    from aiteacher import jobs as registry

    registry.JOBS[probe.path] = probe
    try:
        job_failed(Failed(), None, RuntimeError, RuntimeError("boom"), None)
        assert handled == []  # RQ will try again: nothing recorded yet
        Failed.retries_left = 0
        job_failed(Failed(), None, TimeoutError, TimeoutError("slow"), None)
        assert handled == [("row-1", "timed out")]
    finally:
        registry.JOBS.pop(probe.path, None)


def test_a_job_enqueued_before_the_helper_still_runs_and_fails_through_its_old_callback(
    client, admin_token, monkeypatch
) -> None:
    """An in-flight job of the previous release: its dotted path and callback name, as it enqueued them."""
    run_jobs()
    _, ready_id = _upload(client, admin_token, f"Old-style job material {time.time_ns()}.")
    _, failing_id = _upload(client, admin_token, f"Old-style failing material {time.time_ns()}.")
    from aiteacher import storage
    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.queue import discard_job, enqueue

    for document_id in (ready_id, failing_id):  # what the upload queued, replaced by old-style jobs
        discard_job(f"ingest-{document_id}")
        enqueue(
            "ingest",
            "aiteacher.curriculum.jobs.ingest_document",
            document_id,
            job_id=f"old-{document_id}",
            on_failure="aiteacher.curriculum.jobs.ingest_failed",
            retries=0,
        )
    with transaction(read_only=True) as session:
        failing_key = session.get(Document, failing_id).object_key
    real = storage.get_object

    def crash_one(bucket, key, *args, **kwargs):
        if key == failing_key:
            raise RuntimeError("the object store crashed")
        return real(bucket, key, *args, **kwargs)

    monkeypatch.setattr(storage, "get_object", crash_one)
    run_jobs()
    assert _document(client, admin_token, ready_id)["status"] == "ready"
    failed = _document(client, admin_token, failing_id)
    assert failed["status"] == "failed" and "Processing failed unexpectedly" in failed["error"]


def test_discarding_a_job_another_discard_deletes_meanwhile_is_not_an_error(client, monkeypatch) -> None:
    """Ten copies of one bucket event discard the same dead job at once: the loser of the race finds the job
    gone between its fetch and its delete (rq raises InvalidJobOperation), which is the outcome it wanted."""
    from rq.exceptions import InvalidJobOperation
    from rq.job import Job

    from aiteacher.queue import discard_job, enqueue

    job_id = f"ingest-race-{uuid.uuid4()}"
    enqueue("ingest", "aiteacher.curriculum.jobs.ingest_document", "missing", job_id=job_id)

    def deleted_meanwhile(self, *args, **kwargs):
        raise InvalidJobOperation(f"Failed to retrieve status for job: {self.id}")

    monkeypatch.setattr(Job, "delete", deleted_meanwhile)
    discard_job(job_id)  # no exception
