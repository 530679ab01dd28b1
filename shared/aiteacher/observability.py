"""Logs, metrics and (optional) traces, the same in every function, the worker and `make dev`.

- Logs: every logger writes one JSON line to stderr: time (UTC), level, logger, request_id, function,
  message (plus exc_info when there is one). `LOG_LEVEL` sets the level. Audit lines keep their own
  logger and format (aiteacher.audit).
- Metrics: Prometheus, process-wide, scraped at `/_/metrics` on the function's own port (the watchdog
  proxies it; a request that came through a proxy, with X-Forwarded-For, is refused so the gateway never
  publishes it) and at WORKER_METRICS_PORT for `aiteacher worker`.
- Traces: OpenTelemetry over OTLP when the standard OTEL_* variables ask for it (OTEL_TRACES_EXPORTER or
  OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT); off otherwise, and the SDK is imported only then
  (`pip install aiteacher[otel]`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)
METRICS_PATH = "/_/metrics"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "aiteacher_http_requests_total",
    "HTTP requests by route and status",
    ("function", "method", "route", "status"),
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "aiteacher_http_request_duration_seconds",
    "HTTP request latency (to the last byte)",
    ("function", "method", "route"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITED = Counter("aiteacher_rate_limited_total", "Requests refused with 429", ("function",), registry=REGISTRY)
AUTH_FAILED = Counter(
    "aiteacher_auth_failed_total",
    "Requests refused with 401 (bad, expired or revoked token)",
    ("function",),
    registry=REGISTRY,
)
LLM_LATENCY = Histogram(
    "aiteacher_llm_request_duration_seconds",
    "Language model calls",
    ("provider", "call"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
LLM_TOKENS = Counter("aiteacher_llm_tokens_total", "Language model tokens", ("provider", "kind"), registry=REGISTRY)
EMBEDDING_SECONDS = Histogram(
    "aiteacher_embedding_duration_seconds",
    "Time to embed one batch of texts",
    ("provider",),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
EMBEDDED_TEXTS = Counter("aiteacher_embedded_texts_total", "Texts embedded", ("provider",), registry=REGISTRY)
JOB_DURATION = Histogram(
    "aiteacher_job_duration_seconds",
    "RQ job run time",
    ("queue", "job"),
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900),
    registry=REGISTRY,
)
JOB_FAILURES = Counter("aiteacher_job_failures_total", "RQ jobs that ended failed", ("queue", "job"), registry=REGISTRY)
BUILD_INFO = Gauge(
    "aiteacher_build_info", "The running function", ("function",), registry=REGISTRY, multiprocess_mode="max"
)


def metrics_text() -> bytes:
    """The process's metrics; with several server workers (aiteacher.serve sets PROMETHEUS_MULTIPROC_DIR),
    the sum over all of them, whichever worker answers the scrape."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    if _queue_collector is not None:
        registry.register(_queue_collector)
    return generate_latest(registry)


class QueueDepthCollector:
    """`aiteacher_queue_depth{queue}`: RQ queue lengths read from Redis at scrape time (KEDA reads the same)."""

    def __init__(self, queues: tuple[str, ...]):
        self.queues = queues

    def describe(self) -> Iterator[Any]:
        return iter(())  # no Redis round trip at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from aiteacher.queue import worker_connection

        family = GaugeMetricFamily("aiteacher_queue_depth", "Jobs waiting per RQ queue", labels=("queue",))
        connection = worker_connection()
        try:
            for queue in self.queues:
                family.add_metric((queue,), float(connection.llen(f"rq:queue:{queue}")))
        except Exception:  # noqa: BLE001 - a scrape must not fail on Redis; the gauge is just absent
            return
        finally:
            connection.close()
        yield family


_queue_collector: QueueDepthCollector | None = None


def register_queue_depth(queues: tuple[str, ...]) -> None:
    global _queue_collector
    if _queue_collector is None:
        _queue_collector = QueueDepthCollector(queues)
        REGISTRY.register(_queue_collector)


# --- logs ------------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, function, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        from aiteacher.audit import function_var, request_id_var

        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": request_id_var.get() or None,
            "function": function_var.get() or os.environ.get("FUNCTION_NAME") or None,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


_HANDLER_MARK = "_aiteacher_json"


def configure_logging(level: str | None = None) -> None:
    """Root logger -> one JSON handler on stderr at LOG_LEVEL (idempotent). uvicorn's loggers join it."""
    name = (level or os.environ.get("LOG_LEVEL") or _settings_level()).upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False) or isinstance(handler, logging.StreamHandler):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def _settings_level() -> str:
    try:
        from aiteacher.config import get_settings

        return get_settings().log_level
    except Exception:  # noqa: BLE001 - logging must come up even when settings are broken
        return "INFO"


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's loggers without handlers of their own: they propagate to the JSON root handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


# --- traces ----------------------------------------------------------------------------------------


def tracing_requested(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def with_tracing(app: Any, service_name: str) -> Any:
    """The app wrapped in OpenTelemetry's ASGI middleware when OTEL_* asks for traces; the app itself otherwise."""
    if not tracing_requested():
        return app
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint, headers: OTEL_* variables
    trace.set_tracer_provider(provider)
    return OpenTelemetryMiddleware(app)


# --- small timers for the engines --------------------------------------------------------------------


class timed:
    """`with timed(EMBEDDING_SECONDS, "local"):` observes the block's wall time."""

    def __init__(self, histogram: Histogram, *labels: str):
        self.metric = histogram.labels(*labels)

    def __enter__(self) -> timed:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: Any) -> None:
        self.metric.observe(time.perf_counter() - self.started)


def llm_usage(provider: str, usage: Any) -> None:
    """Token counts from an OpenAI-style `usage` object (absent fields count as nothing)."""
    for kind, attribute in (("prompt", "prompt_tokens"), ("completion", "completion_tokens")):
        value = getattr(usage, attribute, None)
        if isinstance(value, int) and value > 0:
            LLM_TOKENS.labels(provider, kind).inc(value)
