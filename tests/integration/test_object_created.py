"""object-created: recorded AWS / MinIO / CloudEvent payloads, auth, duplicates, and the full
bucket drop (moto S3 -> SQS -> forwarder -> function -> RQ job -> searchable)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import assert_problem, hierarchy, make_pdf, place, run_jobs, search, signed_in

EVENTS = Path(__file__).resolve().parents[1] / "events"
TOKEN = {"Authorization": "Bearer test-events-token"}


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _with_unique_etag(event: dict) -> dict:
    import uuid

    for record in event.get("Records", []):
        record["s3"]["object"]["eTag"] = uuid.uuid4().hex
    if "data" in event:
        event["data"]["object"]["etag"] = uuid.uuid4().hex
    return event


def _document(document_id: str, admin_token: str, client) -> dict:
    response = client.get(f"/documents/{document_id}", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("token", [None, "Bearer wrong-token", "Basic dGVzdA==", "Bearer "])
def test_events_token_is_required(client, token: str | None) -> None:
    headers = {"Authorization": token} if token else {}
    response = client.post("/events/object-created", json=_event("aws_s3_put.json"), headers=headers)
    assert_problem(response, 401, "invalid_events_token")


def test_aws_record_key_is_url_decoded_and_parsed(client, admin_token) -> None:
    response = client.post("/events/object-created", json=_with_unique_etag(_event("aws_s3_put.json")), headers=TOKEN)
    assert response.status_code == 202
    accepted = response.json()["accepted"]
    assert [a["key"] for a in accepted] == ["eng/3/algorithms/Lecture 01: Sorting.pdf"]
    doc = _document(accepted[0]["document_id"], admin_token, client)
    assert doc["course"] == "algorithms" and doc["status"] in ("queued", "failed")


def test_minio_webhook_and_cloudevents(client, admin_token) -> None:
    minio = client.post("/events/object-created", json=_with_unique_etag(_event("minio_put.json")), headers=TOKEN)
    assert minio.status_code == 202
    assert minio.json()["accepted"][0]["key"] == "sci/2/cell-biology/week 2 membranes.pdf"

    structured = client.post(
        "/events/object-created",
        content=json.dumps(_with_unique_etag(_event("cloudevent_structured.json"))),
        headers={**TOKEN, "Content-Type": "application/cloudevents+json"},
    )
    assert structured.status_code == 202
    assert structured.json()["accepted"][0]["key"] == "hum/1/ethics/intro.pdf"

    binary = client.post(
        "/events/object-created",
        json=_with_unique_etag(_event("cloudevent_binary_data.json")),
        headers={
            **TOKEN,
            "ce-specversion": "1.0",
            "ce-type": "com.amazonaws.s3.ObjectCreated",
            "ce-source": "arn:aws:s3:::curriculum",
            "ce-id": "abc-1",
        },
    )
    assert binary.status_code == 202
    doc = _document(binary.json()["accepted"][0]["document_id"], admin_token, client)
    assert doc["course"] == "compilers"


def test_test_events_and_non_pdf_keys_are_ignored(client) -> None:
    test_event = client.post("/events/object-created", json=_event("aws_s3_test_event.json"), headers=TOKEN)
    assert test_event.status_code == 202
    assert test_event.json()["accepted"] == [] and "TestEvent" in test_event.json()["ignored"][0]["reason"]
    non_pdf = client.post("/events/object-created", json=_event("minio_non_pdf.json"), headers=TOKEN)
    assert non_pdf.status_code == 202
    ignored = non_pdf.json()["ignored"]
    assert non_pdf.json()["accepted"] == [] and [i["key"] for i in ignored] == ["eng/3/algorithms/notes.txt"]
    assert ignored[0]["reason"].startswith("not a document") and ".pptx" in ignored[0]["reason"]


@pytest.mark.parametrize(
    "key,message",
    [
        ("zzz/3/algorithms/a.pdf", "Unknown faculty code 'zzz'"),
        ("eng/42/algorithms/a.pdf", "has no semester 42"),
        ("loose-file.pdf", "does not follow"),
    ],
)
def test_unknown_faculty_semester_or_layout_gives_failed_document(client, admin_token, key, message) -> None:
    event = _with_unique_etag(_event("aws_s3_put.json"))
    event["Records"][0]["s3"]["object"]["key"] = key
    response = client.post("/events/object-created", json=event, headers=TOKEN)
    assert response.status_code == 202
    doc = _document(response.json()["accepted"][0]["document_id"], admin_token, client)
    assert doc["status"] == "failed" and message in doc["error"]


def test_malformed_event_bodies_are_422(client) -> None:
    for body in ([], {"Records": [{"no": "s3"}]}, {"hello": "world"}):
        assert_problem(client.post("/events/object-created", json=body, headers=TOKEN), 422)
    broken = client.post(
        "/events/object-created", content=b"{oops", headers={**TOKEN, "Content-Type": "application/json"}
    )
    assert_problem(broken, 422)


def test_same_event_ten_times_concurrently_ingests_once(client, gateway, admin_token) -> None:
    from fastapi.testclient import TestClient

    event = _with_unique_etag(_event("aws_s3_put.json"))

    def deliver(_: int) -> dict:
        with TestClient(gateway) as other:
            response = other.post("/events/object-created", json=event, headers=TOKEN)
            assert response.status_code == 202
            return response.json()["accepted"][0]

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(deliver, range(10)))
    assert len({r["document_id"] for r in results}) == 1
    assert sum(not r["duplicate"] for r in results) == 1
    listed = client.get(
        "/documents", headers={"Authorization": f"Bearer {admin_token}"}, params={"course": "algorithms", "limit": 200}
    ).json()["documents"]
    assert (
        sum(
            d["key"] == "eng/3/algorithms/Lecture 01: Sorting.pdf" and d["id"] == results[0]["document_id"]
            for d in listed
        )
        == 1
    )


def test_bucket_drop_end_to_end(client, live_gateway, admin_token) -> None:
    """An academic drops a PDF into the bucket: S3 notification -> SQS -> sqs-forward -> object-created
    -> RQ ingestion -> a student of that faculty and semester finds it; nobody else does."""
    import os

    from aiteacher import sqs_forward
    from aiteacher.storage import get_s3, get_sqs

    faculties = hierarchy(client)
    phrase = "The quarnified lattice of Osterblum stabilises every red-black rotation."
    get_s3().put_object(
        Bucket="curriculum",
        Key="eng/5/trees/osterblum.pdf",
        Body=make_pdf([["Trees, week 5."], [phrase]]),
        ContentType="application/pdf",
    )
    queue_url = os.environ["EVENTS_QUEUE_URL"]
    admin = {"Authorization": f"Bearer {admin_token}"}
    deadline = time.monotonic() + 60
    dropped: list[dict] = []
    while not dropped and time.monotonic() < deadline:
        # The queue also holds the events of earlier uploads (recognised as duplicates): drain until ours.
        sqs_forward.forward_once(
            get_sqs(), queue_url, f"{live_gateway}/function/object-created/", "test-events-token", wait_seconds=1
        )
        dropped = [
            d
            for d in client.get("/documents", headers=admin, params={"course": "trees"}).json()["documents"]
            if d["key"] == "eng/5/trees/osterblum.pdf"
        ]
    assert len(dropped) == 1 and dropped[0]["source"] == "bucket"
    run_jobs()
    assert client.get(f"/documents/{dropped[0]['id']}", headers=admin).json()["status"] == "ready"

    student = signed_in(client)
    place(client, student, faculties[0], 5)
    results = search(client, student, "quarnified lattice of Osterblum").json()["results"]
    assert results and results[0]["page"] == 2 and "Osterblum" in results[0]["text"]
    assert results[0]["course"] == "trees"
    for faculty, semester in ((faculties[0], 4), (faculties[1], 5)):
        other = signed_in(client)
        place(client, other, faculty, semester)
        assert all("Osterblum" not in r["text"] for r in search(client, other, phrase).json()["results"])


def test_forwarder_keeps_messages_the_function_refuses(client, live_gateway) -> None:
    from aiteacher import sqs_forward
    from aiteacher.storage import get_sqs

    sqs = get_sqs()
    queue_url = sqs.create_queue(QueueName="forwarder-test", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(_event("aws_s3_test_event.json")))
    refused = sqs_forward.forward_once(
        sqs, queue_url, f"{live_gateway}/function/object-created/", "wrong-token", wait_seconds=1
    )
    assert refused == 0
    accepted = sqs_forward.forward_once(
        sqs, queue_url, f"{live_gateway}/function/object-created/", "test-events-token", wait_seconds=1
    )
    assert accepted == 1
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", []) == []
