"""In-process RQ worker threads (`make dev`): rq is imported before any thread can race on it, a worker
that fails is rebuilt and runs the queue, and one that keeps failing reports it instead of idling."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

RUNS: list[str] = []


def record_run(marker: str) -> str:
    """The job the worker threads run in these tests (importable by dotted path)."""
    RUNS.append(marker)
    return marker


def test_worker_threads_import_rq_in_the_starting_thread_before_any_worker_thread_runs() -> None:
    # The race ("partially initialized module 'rq.worker'") needs two threads importing rq at once.
    # With the threads held back, rq must already be imported by start() itself, in the caller.
    code = (
        "import sys, threading\n"
        "threading.Thread.start = lambda self: None\n"
        "from aiteacher.queue import WorkerThreads\n"
        "assert 'rq.worker' not in sys.modules\n"
        "WorkerThreads(2).start()\n"
        "missing = [m for m in ('rq.worker', 'rq.job', 'rq.queue', 'rq.scheduler', 'rq.timeouts')"
        " if m not in sys.modules]\n"
        "assert not missing, missing\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_worker_threads_started_together_from_a_fresh_interpreter_all_stay_alive() -> None:
    code = (
        "import threading, time\n"
        "from aiteacher import queue\n"
        "errors = []\n"
        "orig = queue.WorkerThreads._run_worker\n"
        "def run(self, worked):\n"
        "    try:\n"
        "        queue._thread_worker_class()\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc)); raise\n"
        "queue.WorkerThreads._run_worker = run\n"
        "workers = queue.WorkerThreads(8, max_failures=1)\n"
        "workers.start()\n"
        "for t in workers._threads: t.join(30)\n"
        "assert not errors, errors\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _wait_for(predicate, seconds: float = 30) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_worker_thread_that_fails_is_rebuilt_and_runs_the_queued_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiteacher import queue

    real = queue._thread_worker_class
    calls = {"n": 0}

    def flaky() -> type:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ImportError("cannot import name 'SimpleWorker' from partially initialized module 'rq.worker'")
        return real()

    monkeypatch.setattr(queue, "_thread_worker_class", flaky)
    fatal: list[str] = []
    marker = f"rebuilt-{time.time_ns()}"
    queue.enqueue("notifications", f"{__name__}.record_run", marker, retries=0)
    workers = queue.WorkerThreads(1, on_fatal=fatal.append, pause_seconds=0.05)
    workers.start()
    try:
        assert _wait_for(lambda: marker in RUNS), "the rebuilt worker never ran the job"
        assert workers.restarts == 1 and workers.alive() == 1 and not fatal
    finally:
        workers.stop()


def test_a_worker_thread_that_keeps_failing_calls_on_fatal_with_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiteacher import queue

    def broken() -> type:
        raise ImportError("partially initialized module 'rq.worker'")

    monkeypatch.setattr(queue, "_thread_worker_class", broken)
    fatal: list[str] = []
    called = threading.Event()
    workers = queue.WorkerThreads(
        2, on_fatal=lambda message: (fatal.append(message), called.set()), max_failures=3, pause_seconds=0.01
    )
    workers.start()
    try:
        assert called.wait(30)
        assert _wait_for(lambda: workers.alive() == 0)
        assert len(fatal) == 2 and "partially initialized module 'rq.worker'" in fatal[0]
        assert "failed 3 times in a row" in fatal[0]
    finally:
        workers.stop()


RACE = """
import threading
{prepare}
errors = []
barrier = threading.Barrier(3)

def run(statement):
    barrier.wait()
    try:
        exec(statement, {{}})
    except Exception as exc:
        errors.append(repr(exc))

# What make dev's threads do at once: a request enqueues (`from rq import ...`), a worker builds its
# class (rq.timeouts, rq.worker), a scheduler round starts (rq.scheduler).
statements = ["from rq import Callback, Retry",
              "from rq.timeouts import TimerDeathPenalty; from rq.worker import SimpleWorker",
              "import rq.scheduler"]
threads = [threading.Thread(target=run, args=(s,)) for s in statements]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors[0] if errors else "ok")
"""


def test_threads_importing_rq_at_once_succeed_once_rq_is_imported_first() -> None:
    """Without the pre-import this script fails nearly every time here (20 of 20 runs):
    `ImportError: cannot import name 'SimpleWorker' from partially initialized module 'rq.worker'`."""
    script = RACE.format(prepare="from aiteacher.queue import import_rq_in_this_thread; import_rq_in_this_thread()")
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr[-1500:]
