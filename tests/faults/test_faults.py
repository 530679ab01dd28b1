"""Faults injected into servers these tests own: Redis restarted empty with queued work and revoked tokens,
PostgreSQL stopped during ingestion. Each test asserts the final state: every document ready (or failed
with a reason), chunk counts equal to a clean run, no revoked token accepted, no 5xx but 503s while a
server is away. Deadlines are shortened through settings so the suite takes seconds."""

from __future__ import annotations

import time

from tests.faults.conftest import PrivatePostgres, PrivateRedis, pointed_at
from tests.helpers import bearer, hierarchy, login, make_pdf, place, run_jobs, signed_in, upload

FAST = {"RECONCILE_GRACE_SECONDS": "0", "JOB_RETRY_BASE_SECONDS": "0"}
PAGES = [["Fault-tolerant ingestion: a heap keeps its smallest key at the root."],
         ["Second page: sift-down restores the heap order after a removal."]]


def _admin(client) -> dict:
    from aiteacher.db import transaction
    from aiteacher.identity.service import ensure_admin

    with transaction() as session:
        ensure_admin(session, "fault-admin@example.edu", "fault admin password 123")
    return bearer(login(client, "fault-admin@example.edu", "fault admin password 123")["access_token"])


def _documents(client, admin: dict, ids: list[str]) -> list[dict]:
    return [client.get(f"/documents/{i}", headers=admin).json() for i in ids]


def _clean_chunk_count(client, academic: dict, admin: dict) -> int:
    response = upload(client, academic, make_pdf(PAGES), course="faults")
    run_jobs()
    doc = client.get(f"/documents/{response.json()['document_id']}", headers=admin).json()
    assert doc["status"] == "ready"
    return int(doc["chunks"])


def test_redis_restarted_empty_loses_no_queued_work_and_no_revocation(client, private_redis: PrivateRedis) -> None:
    from aiteacher.reconcile import reconcile_round

    with pointed_at(REDIS_URL=private_redis.url, **FAST):
        admin = _admin(client)
        academic = signed_in(client, "academic", admin["Authorization"].split()[1])
        place(client, academic, hierarchy(client)[0], 3)
        clean = _clean_chunk_count(client, academic, admin)
        queued = [upload(client, academic, make_pdf(PAGES), course="faults").json()["document_id"]
                  for _ in range(4)]
        revoked = signed_in(client)
        assert client.post("/auth/logout", headers=revoked["headers"], json={}).status_code == 204

        private_redis.restart_empty()
        restarted = time.monotonic()
        statuses = [client.get("/me", headers=academic["headers"]).status_code for _ in range(20)]
        assert statuses == [200] * 20  # stale pooled connections are retried, not answered 503
        assert all(client.get("/me", headers=revoked["headers"]).status_code == 401 for _ in range(10))

        report = reconcile_round(force=True)
        assert sorted(report.requeued) == sorted(queued)
        run_jobs()
        recovered = time.monotonic() - restarted
        docs = _documents(client, admin, queued)
        assert [d["status"] for d in docs] == ["ready"] * 4
        assert [d["chunks"] for d in docs] == [clean] * 4
        print(f"\nredis restart: recovered in {recovered:.2f} s, lost 0 of {len(queued)} documents")


def test_database_stopped_during_ingestion_ends_with_every_document_ready(
        client, private_redis: PrivateRedis, private_postgres: PrivatePostgres) -> None:
    from aiteacher.reconcile import reconcile_round

    with pointed_at(REDIS_URL=private_redis.url, DATABASE_URL=private_postgres.url, **FAST):
        admin = _admin(client)
        academic = signed_in(client, "academic", admin["Authorization"].split()[1])
        place(client, academic, hierarchy(client)[0], 3)
        clean = _clean_chunk_count(client, academic, admin)
        queued = [upload(client, academic, make_pdf(PAGES), course="faults").json()["document_id"]
                  for _ in range(3)]

        private_postgres.stop()
        stopped = time.monotonic()
        try:
            during = client.get("/documents", headers=admin)
            assert during.status_code == 503, during.text  # not a 500
            run_jobs()  # every attempt fails: the database is away, and so is the failure callback's
        finally:
            private_postgres.start()
        assert [d["status"] for d in _documents(client, admin, queued)] == ["queued"] * 3

        report = reconcile_round(force=True)
        assert sorted(report.requeued) == sorted(queued)
        run_jobs()
        recovered = time.monotonic() - stopped
        docs = _documents(client, admin, queued)
        assert [d["status"] for d in docs] == ["ready"] * 3
        assert [d["chunks"] for d in docs] == [clean] * 3
        print(f"\ndatabase outage: recovered in {recovered:.2f} s, lost 0 of {len(queued)} documents")
