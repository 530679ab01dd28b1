"""Faults injected into servers these tests own: Redis restarted empty with queued work and revoked tokens,
PostgreSQL stopped during ingestion. Each test asserts the final state: every document ready (or failed
with a reason), chunk counts equal to a clean run, no revoked token accepted, no 5xx but 503s while a
server is away. Deadlines are shortened through settings so the suite takes seconds."""

from __future__ import annotations

import time

from tests.faults.conftest import ONLY_IN_EMBEDDED_PASS, PrivatePostgres, PrivateRedis, pointed_at
from tests.helpers import bearer, hierarchy, login, make_pdf, place, run_jobs, signed_in, upload

pytestmark = ONLY_IN_EMBEDDED_PASS
FAST = {"RECONCILE_GRACE_SECONDS": "0", "JOB_RETRY_BASE_SECONDS": "0"}
PAGES = [
    ["Fault-tolerant ingestion: a heap keeps its smallest key at the root."],
    ["Second page: sift-down restores the heap order after a removal."],
]


def _lecture() -> bytes:
    """The same pages in a file of its own (another PDF title): one course keeps one document per file
    content, and these tests need several documents of the same shape."""
    import uuid

    return make_pdf(PAGES, title=f"Fault lecture {uuid.uuid4().hex[:8]}")


def _admin(client) -> dict:
    from aiteacher.db import transaction
    from aiteacher.identity.service import ensure_admin

    with transaction() as session:
        ensure_admin(session, "fault-admin@example.edu", "fault admin password 123")
    return bearer(login(client, "fault-admin@example.edu", "fault admin password 123")["access_token"])


def _documents(client, admin: dict, ids: list[str]) -> list[dict]:
    return [client.get(f"/documents/{i}", headers=admin).json() for i in ids]


def _clean_chunk_count(client, academic: dict, admin: dict) -> int:
    response = upload(client, academic, _lecture(), course="faults")
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
        queued = [upload(client, academic, _lecture(), course="faults").json()["document_id"] for _ in range(4)]
        revoked = signed_in(client)
        assert client.post("/auth/logout", headers=revoked["headers"], json={}).status_code == 204

        private_redis.restart_empty()
        restarted = time.monotonic()
        statuses = [client.get("/me", headers=academic["headers"]).status_code for _ in range(20)]
        assert statuses == [200] * 20  # stale pooled connections are retried, not answered 503
        assert all(client.get("/me", headers=revoked["headers"]).status_code == 401 for _ in range(10))

        report = reconcile_round(force=True)
        # Earlier tests of the suite may have left documents of their own pending in the shared database.
        assert set(queued) <= set(report.requeued)
        run_jobs()
        recovered = time.monotonic() - restarted
        docs = _documents(client, admin, queued)
        assert [d["status"] for d in docs] == ["ready"] * 4
        assert [d["chunks"] for d in docs] == [clean] * 4
        print(f"\nredis restart: recovered in {recovered:.2f} s, lost 0 of {len(queued)} documents")


def test_database_stopped_during_ingestion_ends_with_every_document_ready(
    client, private_redis: PrivateRedis, private_postgres: PrivatePostgres
) -> None:
    from aiteacher.reconcile import reconcile_round

    with pointed_at(REDIS_URL=private_redis.url, DATABASE_URL=private_postgres.url, **FAST):
        admin = _admin(client)
        academic = signed_in(client, "academic", admin["Authorization"].split()[1])
        place(client, academic, hierarchy(client)[0], 3)
        clean = _clean_chunk_count(client, academic, admin)
        queued = [upload(client, academic, _lecture(), course="faults").json()["document_id"] for _ in range(2)]

        private_postgres.stop()
        stopped = time.monotonic()
        try:
            during = client.get("/documents", headers=admin)
            assert during.status_code == 503, during.text  # not a 500
            run_jobs()  # every attempt fails: the database is away, and so is the failure callback's
        finally:
            private_postgres.start()
        assert [d["status"] for d in _documents(client, admin, queued)] == ["queued"] * 2

        report = reconcile_round(force=True)
        # Earlier tests of the suite may have left documents of their own pending in the shared database.
        assert set(queued) <= set(report.requeued)
        run_jobs()
        recovered = time.monotonic() - stopped
        docs = _documents(client, admin, queued)
        assert [d["status"] for d in docs] == ["ready"] * 2
        assert [d["chunks"] for d in docs] == [clean] * 2
        print(f"\ndatabase outage: recovered in {recovered:.2f} s, lost 0 of {len(queued)} documents")


# --- workers ------------------------------------------------------------------------------------------


def _worker_env(redis_url: str, **extra: str) -> dict:
    import os
    from pathlib import Path

    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "RECONCILE_INTERVAL_SECONDS": "1",
        "WORKER_HEARTBEAT_SECONDS": "1",
        **FAST,
        **extra,
    }
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent / "inject"), env.get("PYTHONPATH", "")])
    return env


def _start_worker(env: dict):
    import os
    import subprocess
    import sys
    from pathlib import Path

    aiteacher = Path(sys.executable).parent / "aiteacher"
    log = open(os.environ.get("AITEACHER_FAULT_LOG", os.devnull), "a")  # noqa: SIM115 - lives with the process
    # Its own process group: the fault tests kill a worker with its work-horse and scheduler at once.
    return subprocess.Popen([str(aiteacher), "worker"], env=env, stdout=log, stderr=log, start_new_session=True)


def _wait(predicate, timeout: float = 60.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("the condition was not reached in time")


def _children(pid: int) -> list[int]:
    from pathlib import Path

    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def _kill_with_children(process) -> None:
    """SIGKILL a worker and its work-horse (which RQ moves to its own session) and scheduler at once."""
    import os
    import signal

    for pid in [*_children(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop(process) -> None:
    import os
    import signal

    children = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except Exception:
        process.kill()
        process.wait(timeout=10)
    for pid in children:  # a work-horse left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_worker_killed_on_every_attempt_ends_failed_with_a_reason(client, private_redis: PrivateRedis) -> None:
    with pointed_at(REDIS_URL=private_redis.url, **FAST):
        admin = _admin(client)
        academic = signed_in(client, "academic", admin["Authorization"].split()[1])
        place(client, academic, hierarchy(client)[0], 3)
        document_id = upload(client, academic, _lecture(), course="faults").json()["document_id"]
        worker = _start_worker(_worker_env(private_redis.url, AITEACHER_FAULT="kill-ingest"))
        try:
            started = time.monotonic()
            doc = _wait(
                lambda: (d := client.get(f"/documents/{document_id}", headers=admin).json())["status"] == "failed" and d
            )
            elapsed = time.monotonic() - started
        finally:
            _stop(worker)
        from aiteacher.reconcile import max_attempts

        assert "gave up after" in doc["error"] and doc["chunks"] == 0
        from aiteacher.db import transaction
        from aiteacher.db.models import Document

        with transaction() as session:
            assert session.get(Document, document_id).attempts == max_attempts()
        print(f"\nkilled work-horse x{max_attempts()}: failed with a reason after {elapsed:.1f} s")


def _healthy(env: dict) -> bool:
    """`aiteacher worker-health` (the worker's liveness probe) passes."""
    import subprocess
    import sys
    from pathlib import Path

    aiteacher = str(Path(sys.executable).parent / "aiteacher")
    return subprocess.run([aiteacher, "worker-health"], env=env, capture_output=True).returncode == 0


def test_the_worker_outlives_a_redis_restart_and_reports_its_health(client, private_redis: PrivateRedis) -> None:
    env = _worker_env(private_redis.url)
    assert not _healthy(env)  # no worker yet
    worker = _start_worker(env)
    try:
        _wait(lambda: _healthy(env))
        private_redis.restart_empty()
        restarted = time.monotonic()
        assert worker.poll() is None
        with pointed_at(REDIS_URL=private_redis.url):
            from aiteacher.queue import get_queue

            job = get_queue("notifications").enqueue_call("os.getpid")
            finished = _wait(lambda: job.get_status(refresh=True) == "finished", timeout=90)
            recovered = time.monotonic() - restarted
        assert finished and worker.poll() is None
        _wait(lambda: _healthy(env))
        print(f"\nworker after a Redis restart: ran the next job {recovered:.1f} s later")
    finally:
        _stop(worker)
    assert worker.returncode is not None and not _healthy(env)


def test_a_worker_stopped_while_it_starts_exits_0_and_leaves_no_registration(private_redis: PrivateRedis) -> None:
    # The SIGTERM arrives once the worker is registered, before RQ's loop installs its own handlers
    # (a pod stopped while it starts): it used to kill the process registered, with the scheduler's locks.
    from redis import Redis

    worker = _start_worker(_worker_env(private_redis.url, AITEACHER_FAULT="term-at-start"))
    try:
        code = worker.wait(timeout=60)
    finally:
        _stop(worker)
    redis = Redis.from_url(private_redis.url)
    assert code == 0
    assert redis.scard("rq:workers") == 0
    assert not redis.keys("rq:scheduler-lock:*")


def test_a_worker_stopped_while_redis_is_away_exits_0_at_once(private_redis: PrivateRedis) -> None:
    import signal

    env = _worker_env(private_redis.url)
    worker = _start_worker(env)
    try:
        _wait(lambda: _healthy(env))
        private_redis.stop()
        time.sleep(3)  # RQ's loop notices and the worker is backing off, waiting for Redis
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)  # one signal: the first is not swallowed by a Redis error
        code = worker.wait(timeout=15)
    finally:
        _stop(worker)
        if private_redis.process is None:
            private_redis.start()
    assert code == 0


def test_a_job_of_a_killed_worker_goes_back_to_the_queue(client, private_redis: PrivateRedis) -> None:
    env = _worker_env(private_redis.url)
    with pointed_at(REDIS_URL=private_redis.url):
        from rq.job import Job

        from aiteacher.cache import get_redis
        from aiteacher.queue import enqueue

        job = Job.fetch(
            enqueue("notifications", "time.sleep", 3, retries=1, retry_intervals=[0]), connection=get_redis()
        )
        first = _start_worker(env)
        _wait(lambda: job.get_status(refresh=True) == "started")
        _kill_with_children(first)  # the worker, its work-horse and its scheduler die together
        first.wait(timeout=10)
        killed = time.monotonic()
        second = _start_worker(env)
        try:
            _wait(lambda: job.get_status(refresh=True) == "finished", timeout=90)
            recovered = time.monotonic() - killed
        finally:
            _stop(second)
        print(f"\njob of a SIGKILLed worker finished by the next one {recovered:.1f} s later")


# --- read replica -------------------------------------------------------------------------------------


def test_reads_go_to_a_lagging_replica_without_ever_missing_the_callers_own_writes(
    client, private_redis: PrivateRedis, private_postgres: PrivatePostgres
) -> None:
    import psycopg2

    from tests.faults.conftest import PrivateReplica

    replica = PrivateReplica(private_postgres)
    replica.init()
    replica.start()
    try:
        with pointed_at(
            REDIS_URL=private_redis.url,
            DATABASE_URL=private_postgres.url,
            DATABASE_READ_URL=replica.url,
            REPLICA_RETRY_SECONDS="0.5",
        ):
            time.sleep(2)  # the migrated schema reaches the replica
            admin = _admin(client)
            faculties = hierarchy(client)
            student = signed_in(client)
            place(client, student, faculties[0], 2)
            time.sleep(2)  # the replica has everything so far
            replica_sql = psycopg2.connect(host="127.0.0.1", port=replica.port, user="postgres", dbname="postgres")
            replica_sql.autocommit = True

            def replica_rollbacks() -> int:
                with replica_sql.cursor() as cursor:
                    cursor.execute("SELECT xact_rollback FROM pg_stat_database WHERE datname = 'postgres'")
                    return int(cursor.fetchone()[0])

            # Read-your-writes: PUT /me then GET /me at once, while the replica is still 1.5 s behind.
            semester = next(s["id"] for s in faculties[1]["semesters"] if s["number"] == 4)
            moved = client.put(
                "/me", headers=student["headers"], json={"faculty_id": faculties[1]["id"], "semester_id": semester}
            )
            assert moved.status_code == 200
            with replica_sql.cursor() as cursor:  # the lag is real: the replica still has the old placement
                cursor.execute("SELECT faculty_id FROM users WHERE id = %s", (student["id"],))
                assert cursor.fetchone()[0] == faculties[0]["id"]
            me = client.get("/me", headers=student["headers"]).json()
            assert (me["faculty_id"], me["semester_id"]) == (faculties[1]["id"], semester)

            # An upload, then its document at once; an exam request, then the exam at once.
            academic = signed_in(client, "academic", admin["Authorization"].split()[1])
            place(client, academic, faculties[0], 3)
            document_id = upload(client, academic, _lecture(), course="faults").json()["document_id"]
            assert client.get(f"/documents/{document_id}", headers=academic["headers"]).status_code == 200
            exam = client.post("/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 0})
            assert exam.status_code == 202, exam.text
            assert client.get(f"/exams/{exam.json()['exam_id']}", headers=student["headers"]).status_code == 200

            # A caller without recent writes reads from the replica.
            time.sleep(2)
            reader = signed_in(client)
            time.sleep(2)
            before = replica_rollbacks()
            assert client.get("/faculties").status_code == 200
            assert client.get("/documents", headers=academic["headers"]).status_code == 200
            assert replica_rollbacks() > before

            # The replica stops: GETs degrade to the primary, never a 5xx.
            replica_sql.close()
            replica.stop()
            statuses = [client.get("/documents", headers=academic["headers"]).status_code for _ in range(5)]
            statuses += [client.get("/me", headers=reader["headers"]).status_code for _ in range(5)]
            assert statuses == [200] * 10
    finally:
        replica.destroy()
