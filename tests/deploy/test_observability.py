"""Logs, metrics and traces as a function and the worker ship them: one JSON line per log record with the
request id and function, LOG_LEVEL honoured, Prometheus metrics at /_/metrics (never through a proxy),
worker job metrics, OpenTelemetry off unless OTEL_* asks, and a dashboard that only plots real metrics."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]

APP = textwrap.dedent("""
    import logging
    from fastapi import Response
    from aiteacher.web import create_app

    app = create_app("probe", "observability probe")
    log = logging.getLogger("aiteacher.probe")

    @app.get("/talk")
    def talk():
        log.info("an info line")
        log.warning("a warning line")
        return {"ok": True}

    @app.get("/items/{item_id}")
    def item(item_id: int):
        return {"id": item_id}

    @app.get("/denied")
    def denied():
        return Response(status_code=401)

    @app.get("/limited")
    def limited():
        return Response(status_code=429, headers={"Retry-After": "1"})
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, str, Path]:
    (tmp_path / "handler.py").write_text(APP)
    port = _free_port()
    log_path = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "aiteacher.serve", "handler:app", "--port", str(port), "--drain-seconds", "0"],
        cwd=tmp_path,
        # Its workers' metrics folder under tmp_path: a server killed at teardown cannot remove it.
        env={**os.environ, "FUNCTION_NAME": "probe", "TMPDIR": str(tmp_path), **env},
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_/health", timeout=1).status_code == 200:
                return process, base, log_path
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(log_path.read_text()[-2000:])


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def test_every_log_line_is_json_with_request_id_and_function(tmp_path: Path) -> None:
    process, base, log_path = _serve(tmp_path, LOG_LEVEL="INFO")
    try:
        httpx.get(f"{base}/talk", headers={"X-Request-ID": "req-observe-1"}, timeout=10)
    finally:
        _stop(process)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses: nothing but JSON on stderr
    ours = [r for r in records if r["logger"] == "aiteacher.probe"]
    assert [r["message"] for r in ours] == ["an info line", "a warning line"]
    for record in ours:
        assert set(record) >= {"time", "level", "logger", "request_id", "function", "message"}
        assert record["request_id"] == "req-observe-1" and record["function"] == "probe"
        assert record["time"].endswith("Z")
    assert {r["level"] for r in ours} == {"INFO", "WARNING"}


def test_log_level_warning_drops_info(tmp_path: Path) -> None:
    process, base, log_path = _serve(tmp_path, LOG_LEVEL="WARNING")
    try:
        httpx.get(f"{base}/talk", timeout=10)
    finally:
        _stop(process)
    ours = [json.loads(line) for line in log_path.read_text().splitlines() if "aiteacher.probe" in line]
    assert [r["message"] for r in ours] == ["a warning line"]


@pytest.mark.parametrize("workers", ["1", "3"])
def test_metrics_count_routes_statuses_auth_failures_and_rate_limits(tmp_path: Path, workers: str) -> None:
    """With several workers (WEB_CONCURRENCY) every count is the replica's: each request is counted once,
    whichever worker served it and whichever worker answers the scrape."""
    process, base, _ = _serve(tmp_path, WEB_CONCURRENCY=workers)
    try:
        for path in ("/items/1", "/items/2", "/denied", "/limited", "/nowhere"):
            httpx.get(base + path, timeout=10)  # a new connection each: the kernel spreads them over the workers
        text = httpx.get(f"{base}/_/metrics", timeout=10).text
        through_proxy = httpx.get(f"{base}/_/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    finally:
        _stop(process)
    assert (
        'aiteacher_http_requests_total{function="probe",method="GET",route="/items/{item_id}",status="200"} 2.0' in text
    )
    assert 'route="unmatched",status="404"' in text  # unknown paths never become labels of their own
    assert 'aiteacher_auth_failed_total{function="probe"} 1.0' in text
    assert 'aiteacher_rate_limited_total{function="probe"} 1.0' in text
    assert re.search(
        r'aiteacher_http_request_duration_seconds_count\{function="probe",method="GET",'
        r'route="/items/\{item_id\}"\} 2\.0',
        text,
    )
    assert through_proxy.status_code == 404  # the gateway adds X-Forwarded-For: never published there


WORKER_SCRIPT = textwrap.dedent("""
    import os, sys
    from aiteacher.queue import _measured_worker_class, enqueue, worker_connection
    from aiteacher import observability as obs

    enqueue("notifications", "os.getcwd", retries=0)
    enqueue("notifications", "json.loads", "not json", retries=0)
    obs.register_queue_depth(("notifications",))
    worker = _measured_worker_class()(["notifications"], connection=worker_connection())
    worker.work(burst=True, logging_level="WARNING")
    sys.stdout.write(obs.metrics_text().decode())
""")


def test_worker_metrics_job_duration_failures_and_queue_depth(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert 'aiteacher_job_duration_seconds_count{job="getcwd",queue="notifications"} 1.0' in text
    assert 'aiteacher_job_failures_total{job="loads",queue="notifications"} 1.0' in text
    assert 'aiteacher_queue_depth{queue="notifications"} 0.0' in text


def test_tracing_is_off_unless_otel_variables_ask_for_it() -> None:
    from aiteacher.observability import tracing_requested, with_tracing

    assert not tracing_requested({})
    assert not tracing_requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not tracing_requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    app = object()
    assert with_tracing(app, "probe") is app
    code = (
        "import sys; from aiteacher.observability import with_tracing; with_tracing(object(), 'x'); "
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0


def test_grafana_dashboard_plots_only_metrics_we_export() -> None:
    from aiteacher import observability as obs

    exported = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for metric in obs.REGISTRY.collect():  # labelled metrics have no samples until used: names from types
        exported.update(metric.name + suffix for suffix in suffixes.get(metric.type, ("",)))
    exported.add("aiteacher_queue_depth")
    dashboard = json.loads((REPO / "infra" / "grafana" / "aiteacher.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 8
    used = {name for expr in expressions for name in re.findall(r"\baiteacher_[a-z_]+", expr)}
    assert used and used <= exported, used - exported
