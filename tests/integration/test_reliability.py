"""Issue #8.7 and #11 through the HTTP contract: bounded, total bucket events; a dead-letter queue; the
reconciler; idempotent re-indexing; search limited to ready documents; revocations that survive Redis
losing its data; Redis pools that wait instead of failing."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from tests.helpers import bearer, hierarchy, make_pdf, place, run_jobs, search, signed_in, upload

EVENTS = Path(__file__).resolve().parents[1] / "events"
TOKEN = {"Authorization": "Bearer test-events-token"}


def _record(key: str, *, bucket: str = "curriculum", size: object = 1024, etag: str | None = None) -> dict:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": etag or uuid.uuid4().hex}},
    }


def _s3_event(*records: dict) -> dict:
    return {"Records": list(records)}


@pytest.fixture
def settings_override(monkeypatch):
    """Change settings for one test (the clients built from them stay)."""
    from aiteacher.config import get_settings

    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def _admin(admin_token: str) -> dict:
    return bearer(admin_token)


def _doc(client, admin_token: str, document_id: str) -> dict:
    response = client.get(f"/documents/{document_id}", headers=_admin(admin_token))
    assert response.status_code == 200, response.text
    return response.json()


# --- #8.7 bucket events -------------------------------------------------------------------------------


def test_forged_event_naming_another_bucket_is_ignored_with_a_reason(client) -> None:
    event = _s3_event(_record("eng/3/algorithms/x.pdf", bucket="someone-elses-bucket"))
    response = client.post("/events/object-created", json=event, headers=TOKEN)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == []
    assert "not ingested" in body["ignored"][0]["reason"]


def test_records_beyond_the_cap_per_event_are_ignored(client) -> None:
    records = [_record(f"zzz/3/algorithms/cap-{index}.pdf") for index in range(103)]
    response = client.post("/events/object-created", json=_s3_event(*records), headers=TOKEN)
    assert response.status_code == 202
    body = response.json()
    assert len(body["accepted"]) == 100
    assert body["ignored"] == [{"key": "", "reason": "3 record(s) beyond the limit of 100 per event"}]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["s3"]["object"].update(key="eng/%C2%B3/c/x.pdf"),  # semester "³"
        lambda r: r["s3"]["object"].update(key="eng/" + "9" * 40 + "/c/x.pdf"),  # a semester no integer holds
        lambda r: r["s3"]["object"].update(size=10**30),
        lambda r: r["s3"]["object"].update(size="huge"),
        lambda r: r["s3"].update(bucket="curriculum"),  # bucket given as a string
        lambda r: r["s3"]["object"].update(key=["a", "list"]),
        lambda r: r["s3"]["object"].update(eTag={"an": "object"}),
        lambda r: r["s3"]["object"].update(key="eng/3/" + "c" * 300 + "/x.pdf"),  # course longer than the column
        lambda r: r["s3"]["object"].update(key="eng/3/c/" + "n" * 5000 + ".pdf"),
        lambda r: r.update(eventName=12345),
    ],
    ids=[
        "semester-superscript",
        "semester-huge",
        "size-1e30",
        "size-text",
        "bucket-string",
        "key-list",
        "etag-object",
        "course-too-long",
        "key-too-long",
        "event-name-number",
    ],
)
def test_malformed_event_records_never_answer_5xx(client, admin_token, mutate) -> None:
    record = _record("eng/3/algorithms/malformed.pdf")
    mutate(record)
    response = client.post("/events/object-created", json=_s3_event(record), headers=TOKEN)
    assert response.status_code in (202, 422), response.text
    if response.status_code == 202:
        body = response.json()
        assert len(body["accepted"]) + len(body["ignored"]) == 1
        for accepted in body["accepted"]:  # accepted only as a failed document with a reason
            doc = _doc(client, admin_token, accepted["document_id"])
            assert doc["status"] in ("failed", "queued")
            if doc["status"] == "failed":
                assert doc["error"]


def test_ten_thousand_deep_json_is_422_not_500(client) -> None:
    body = "[" * 10_000 + "]" * 10_000
    response = client.post(
        "/events/object-created", content=body, headers={**TOKEN, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_a_bucket_burst_queues_behind_api_uploads(client, admin_token) -> None:
    """Bucket events go to `ingest-bulk`, uploads to `ingest`; a worker always takes `ingest` first."""
    from aiteacher.queue import QUEUES, get_queue, run_burst
    from aiteacher.storage import get_s3

    run_jobs()
    keys = [f"eng/2/burst/file-{index}-{uuid.uuid4().hex[:6]}.pdf" for index in range(5)]
    records = []
    for index, key in enumerate(keys):  # distinct files: the same bytes in one course are one document
        pdf = make_pdf([[f"Burst material number {index}."]])
        etag = get_s3().put_object(Bucket="curriculum", Key=key, Body=pdf)["ETag"].strip('"')
        records.append(_record(key, etag=etag))
    burst = client.post("/events/object-created", json=_s3_event(*records), headers=TOKEN)
    assert burst.status_code == 202 and len(burst.json()["accepted"]) == 5
    academic = signed_in(client, "academic", admin_token)
    place(client, academic, hierarchy(client)[0], 2)
    uploaded = upload(client, academic, make_pdf([["The upload that must not wait."]]), course="burst")
    assert uploaded.status_code == 202
    assert get_queue("ingest-bulk").count == 5 and get_queue("ingest").count == 1
    assert QUEUES.index("ingest") < QUEUES.index("ingest-bulk")
    from aiteacher.queue import _thread_worker_class, worker_connection

    worker = _thread_worker_class()(list(QUEUES), connection=worker_connection())
    worker.work(burst=True, max_jobs=1, logging_level="WARNING")
    assert _doc(client, admin_token, uploaded.json()["document_id"])["status"] == "ready"
    assert all(_doc(client, admin_token, a["document_id"])["status"] == "queued" for a in burst.json()["accepted"])
    run_burst()
    assert all(_doc(client, admin_token, a["document_id"])["status"] == "ready" for a in burst.json()["accepted"])


def test_forwarder_dead_letters_messages_that_keep_failing(client, live_gateway, settings_override) -> None:
    from aiteacher import sqs_forward
    from aiteacher.storage import get_sqs

    settings_override(EVENTS_MAX_RECEIVES="3")
    sqs = get_sqs()
    suffix = uuid.uuid4().hex[:6]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=f"events-{suffix}",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "10"}),
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"hello": "world"}))  # 422: never acceptable
    sqs.send_message(QueueUrl=queue, MessageBody="{not json")
    target = f"{live_gateway}/function/object-created/"
    stats = sqs_forward.ForwardStats()
    sqs_forward.forward_once(sqs, queue, target, "test-events-token", wait_seconds=1, stats=stats)
    assert stats.dead_lettered == 2
    # A function that stays down (nothing listens on port 9): dead-lettered after EVENTS_MAX_RECEIVES tries.
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(_s3_event(_record("eng/3/c/x.pdf"))))
    for _ in range(6):
        sqs_forward.forward_once(sqs, queue, "http://127.0.0.1:9/", "test-events-token", wait_seconds=0, stats=stats)
    assert stats.dead_lettered == 3
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) == []
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(dead) == 3


def test_dev_wiring_gives_the_events_queue_a_dead_letter_queue() -> None:
    import os

    from aiteacher.sqs_forward import dead_letter_url
    from aiteacher.storage import get_sqs

    assert dead_letter_url(get_sqs(), os.environ["EVENTS_QUEUE_URL"]).endswith("curriculum-events-dlq")


# --- #11.1 reconciler, redelivery, backoff --------------------------------------------------------------


def _lose_job(document_id: str) -> None:
    """What a Redis restart without persistence does to a queued job."""
    from aiteacher.queue import discard_job

    discard_job(f"ingest-{document_id}")


def _academic_upload(client, admin_token, text: str, semester: int = 3) -> tuple[dict, str]:
    academic = signed_in(client, "academic", admin_token)
    place(client, academic, hierarchy(client)[0], semester)
    response = upload(client, academic, make_pdf([[text], ["Second page of " + text]]), course="reliability")
    assert response.status_code == 202, response.text
    return academic, response.json()["document_id"]


def test_reconciler_requeues_work_whose_job_was_lost(client, admin_token, settings_override) -> None:
    from aiteacher.reconcile import reconcile_round

    run_jobs()
    _, document_id = _academic_upload(client, admin_token, "Lost job material about heaps.")
    _lose_job(document_id)
    run_jobs()
    assert _doc(client, admin_token, document_id)["status"] == "queued"  # nothing would ever run it
    settings_override(RECONCILE_GRACE_SECONDS="0")
    report = reconcile_round(force=True)
    assert document_id in report.requeued
    run_jobs()
    assert _doc(client, admin_token, document_id)["status"] == "ready"


def test_reconciler_fails_work_whose_attempts_are_spent_with_a_reason(client, admin_token, settings_override) -> None:
    from sqlalchemy import update

    from aiteacher.db import transaction
    from aiteacher.db.models import Document
    from aiteacher.reconcile import max_attempts, reconcile_round

    run_jobs()
    _, document_id = _academic_upload(client, admin_token, "Material whose worker always dies.")
    _lose_job(document_id)
    with transaction() as session:  # what four killed work-horses leave behind
        session.execute(
            update(Document).where(Document.id == document_id).values(status="processing", attempts=max_attempts())
        )
    settings_override(RECONCILE_GRACE_SECONDS="0")
    assert document_id in reconcile_round(force=True).failed
    doc = _doc(client, admin_token, document_id)
    assert doc["status"] == "failed" and "gave up after" in doc["error"]


def test_reconciler_leaves_live_and_fresh_work_alone(client, admin_token) -> None:
    from aiteacher.reconcile import reconcile_round

    run_jobs()
    _, document_id = _academic_upload(client, admin_token, "Fresh material stays queued.")
    report = reconcile_round(force=True)  # default grace: 60 s, and its job is live anyway
    assert document_id not in report.requeued and document_id not in report.failed
    run_jobs()
    assert _doc(client, admin_token, document_id)["status"] == "ready"


def test_a_redelivered_event_requeues_a_stuck_document(client, admin_token) -> None:
    from aiteacher.storage import get_s3

    run_jobs()
    key = f"eng/3/redelivery/{uuid.uuid4().hex[:8]}.pdf"
    etag = (
        get_s3().put_object(Bucket="curriculum", Key=key, Body=make_pdf([["Redelivered material."]]))["ETag"].strip('"')
    )
    record = _record(key, etag=etag)
    first = client.post("/events/object-created", json=_s3_event(record), headers=TOKEN).json()["accepted"][0]
    _lose_job(first["document_id"])
    again = client.post("/events/object-created", json=_s3_event(record), headers=TOKEN).json()["accepted"][0]
    assert again["document_id"] == first["document_id"] and again["duplicate"] is True
    run_jobs()
    assert _doc(client, admin_token, first["document_id"])["status"] == "ready"


def test_retries_back_off_exponentially_with_jitter(settings_override) -> None:
    from aiteacher.queue import backoff_intervals

    settings_override(JOB_RETRY_BASE_SECONDS="4", JOB_RETRY_MAX_SECONDS="100")
    for _ in range(20):
        first, second, third = backoff_intervals(3)
        assert 3 <= first <= 5 and 6 <= second <= 10 and 12 <= third <= 20
    assert sum(backoff_intervals(3)) >= 10  # a 10 s outage is outlived
    assert len({tuple(backoff_intervals(3)) for _ in range(20)}) > 1  # jittered


def test_failure_callback_with_the_database_down_leaves_work_to_the_reconciler(
    client, admin_token, monkeypatch
) -> None:
    from aiteacher.curriculum import jobs
    from aiteacher.errors import ServiceUnavailable

    run_jobs()
    _, document_id = _academic_upload(client, admin_token, "Material marked while the database is down.")

    def database_down(*_args, **_kwargs):
        raise ServiceUnavailable("The database is unreachable; try again shortly")

    monkeypatch.setattr(jobs, "_set_status", database_down)
    monkeypatch.setattr(jobs.time, "sleep", lambda _: None)

    class DeadJob:
        retries_left = 0
        args = (document_id,)

    jobs.ingest_failed(DeadJob(), None, RuntimeError, RuntimeError("boom"), None)  # must not raise
    monkeypatch.undo()
    assert _doc(client, admin_token, document_id)["status"] == "queued"


# --- #11.2 idempotent indexing, ready-only search -------------------------------------------------------


def test_a_retried_ingestion_replaces_its_partial_vectors(client, admin_token) -> None:
    from aiteacher.embeddings import get_embedder
    from aiteacher.vectors import VectorPoint, chunk_point_id, get_vector_store

    run_jobs()
    _, document_id = _academic_upload(client, admin_token, "Partial vectors of an interrupted attempt.")
    embedder = get_embedder()
    store = get_vector_store()
    store.ensure_collection(embedder.name, embedder.dimension)
    vector = embedder.embed(["leftover"])[0]
    faculty = hierarchy(client)[0]
    store.upsert(
        [
            VectorPoint(
                id=chunk_point_id(document_id, 900 + index),
                vector=vector,
                payload={
                    "faculty_id": faculty["id"],
                    "semester_id": None,
                    "department_id": None,
                    "course": "reliability",
                    "document_id": document_id,
                    "title": "x",
                    "page": 1,
                    "text": "leftover",
                    "chunk_index": 900 + index,
                },
            )
            for index in range(7)
        ]
    )
    run_jobs()
    doc = _doc(client, admin_token, document_id)
    assert doc["status"] == "ready"
    assert store.count({"document_id": document_id}) == doc["chunks"]


def test_search_never_returns_chunks_of_a_document_that_is_not_ready(client, admin_token) -> None:
    from sqlalchemy import update

    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    run_jobs()
    phrase = f"Zorblatt {uuid.uuid4().hex[:6]} theorem of ready documents"
    _, document_id = _academic_upload(client, admin_token, phrase, semester=6)
    run_jobs()
    student = signed_in(client)
    place(client, student, hierarchy(client)[0], 6)
    found = search(client, student, phrase, top_k=20).json()["results"]
    assert any(r["document_id"] == document_id for r in found)
    with transaction() as session:  # re-indexing: its vectors are being replaced
        session.execute(update(Document).where(Document.id == document_id).values(status="processing"))
    other_query = phrase + " again"  # not the cached query
    assert all(
        r["document_id"] != document_id for r in search(client, student, other_query, top_k=20).json()["results"]
    )


# --- #11.3 revocation survives Redis losing its keys ----------------------------------------------------


def _drop_redis_data_and_connections() -> None:
    """Delete every deny-list key and the sentinel (what an empty Redis restart leaves), and drop the
    pooled connections so the next commands reconnect."""
    from aiteacher.cache import forget_async_clients, get_redis

    redis = get_redis()
    for key in redis.scan_iter(match="deny:*", count=1000):
        redis.delete(key)
    redis.connection_pool.disconnect()
    forget_async_clients()


def test_a_logged_out_token_stays_refused_after_redis_loses_its_data(client) -> None:
    user = signed_in(client)
    assert client.get("/me", headers=user["headers"]).status_code == 200
    assert (
        client.post("/auth/logout", headers=user["headers"], json={"refresh_token": user["refresh_token"]}).status_code
        == 204
    )
    assert client.get("/me", headers=user["headers"]).status_code == 401
    _drop_redis_data_and_connections()
    for _ in range(5):
        response = client.get("/me", headers=user["headers"])
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "token_revoked"
    assert client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]}).status_code == 401
    other = signed_in(client)  # a valid token still works
    assert client.get("/me", headers=other["headers"]).status_code == 200


def test_a_reused_refresh_family_stays_revoked_after_redis_loses_its_data(client) -> None:
    user = signed_in(client)
    first = client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert first.status_code == 200
    assert client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]}).status_code == 401  # reuse
    stolen_access = first.json()["access_token"]
    assert client.get("/me", headers=bearer(stolen_access)).status_code == 401
    _drop_redis_data_and_connections()
    assert client.get("/me", headers=bearer(stolen_access)).status_code == 401


# --- #11.4 pools ---------------------------------------------------------------------------------------


def test_two_hundred_concurrent_requests_on_one_process_get_no_5xx(gateway, client, settings_override) -> None:
    """A pool smaller than the requests in flight makes them wait for a connection, not fail with 503."""
    import httpx

    from aiteacher.cache import forget_async_clients

    settings_override(REDIS_MAX_CONNECTIONS="20", RATE_LIMIT_REQUESTS="100000")
    forget_async_clients()
    user = signed_in(client)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            responses = await asyncio.gather(*[http.get("/me", headers=user["headers"]) for _ in range(200)])
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    forget_async_clients()
    assert statuses.count(200) == 200, sorted(set(statuses))


def test_reconciler_requeues_an_exam_whose_job_was_lost_and_fails_it_once_attempts_are_spent(
    client, admin_token, settings_override
) -> None:
    from sqlalchemy import update

    from aiteacher.db import transaction
    from aiteacher.db.models import Exam
    from aiteacher.queue import discard_job
    from aiteacher.reconcile import max_attempts, reconcile_round

    run_jobs()
    student = signed_in(client)
    place(client, student, hierarchy(client)[0], 3)
    exams = [
        client.post("/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 0}).json()["exam_id"]
        for _ in range(2)
    ]
    for exam_id in exams:
        discard_job(f"exam-{exam_id}")
    with transaction() as session:  # the second one has been re-queued until its budget is spent
        session.execute(update(Exam).where(Exam.id == exams[1]).values(status="generating", attempts=max_attempts()))
    settings_override(RECONCILE_GRACE_SECONDS="0")
    report = reconcile_round(force=True)
    assert exams[0] in report.requeued and exams[1] in report.failed
    run_jobs()
    first = client.get(f"/exams/{exams[0]}", headers=student["headers"]).json()
    second = client.get(f"/exams/{exams[1]}", headers=student["headers"]).json()
    assert first["status"] in ("ready", "failed") and first["status"] != "queued"
    assert second["status"] == "failed"


def test_with_redis_empty_and_the_database_away_tokens_are_refused_503_not_accepted(client, monkeypatch) -> None:
    """The deny-list cannot be rebuilt: fail closed (503), never serve a possibly revoked token."""
    from aiteacher.security import revocation

    user = signed_in(client)
    _drop_redis_data_and_connections()

    def database_down() -> list:
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(revocation, "deny_list_entries", database_down)
    response = client.get("/me", headers=user["headers"])
    assert response.status_code == 503, response.text
    monkeypatch.undo()
    assert client.get("/me", headers=user["headers"]).status_code == 200
