"""The async OpenAI client's connection pool finds a connection in O(1). httpcore's own pool re-examined every
pooled connection, probing each idle socket, on every request and every response close; with a slow model a
replica keeps one connection per turn in flight, so at a few hundred turns that scan was the largest CPU cost
of a turn (docs/benchmarks.md, tutor capacity)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore2
import pytest

from aiteacher.openai_client import _async_http_client


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        time.sleep(float(body.get("delay", 0)))
        payload = json.dumps({"ok": True, "close": bool(body.get("close"))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if body.get("close"):
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        if body.get("close"):
            self.close_connection = True

    def log_message(self, *_: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default listen backlog (5) resets a burst of connects


@pytest.fixture
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts = {"probes": 0, "connections": 0}
    has_expired = httpcore2.AsyncHTTPConnection.has_expired
    init = httpcore2.AsyncHTTPConnection.__init__

    def probe(self: httpcore2.AsyncHTTPConnection) -> bool:
        counts["probes"] += 1
        return has_expired(self)

    def made(self: httpcore2.AsyncHTTPConnection, *args: object, **kwargs: object) -> None:
        counts["connections"] += 1
        init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpcore2.AsyncHTTPConnection, "has_expired", probe)
    monkeypatch.setattr(httpcore2.AsyncHTTPConnection, "__init__", made)
    return counts


def test_a_request_probes_a_few_connections_however_many_are_pooled(server: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    counts = _counting(monkeypatch)

    async def scenario() -> tuple[int, int, int]:
        async with _async_http_client() as http:
            # 60 turns in flight at once: 60 connections, then idle in the pool.
            replies = await asyncio.gather(*(http.post(server, json={"delay": 0.3}) for _ in range(60)))
            assert all(r.status_code == 200 for r in replies)
            pooled, probes_before = counts["connections"], counts["probes"]
            for _ in range(20):  # one request at a time: each reuses a pooled connection
                assert (await http.post(server, json={})).json()["ok"] is True
            return pooled, counts["probes"] - probes_before, counts["connections"] - pooled

    pooled, probes, opened = asyncio.run(scenario())
    assert pooled == 60
    assert opened == 0, "idle connections are reused"
    assert probes <= 3 * 20  # httpcore's pool: more than 20 × 60


def test_a_connection_the_server_closed_is_replaced_without_an_error(server: str) -> None:
    async def scenario() -> list[int]:
        async with _async_http_client() as http:
            statuses = []
            for close in (True, False, True, False):  # the server drops the connection after some replies
                statuses.append((await http.post(server, json={"close": close})).status_code)
            return statuses

    assert asyncio.run(scenario()) == [200, 200, 200, 200]


def test_the_openai_client_uses_the_pool() -> None:
    from aiteacher.openai_client import _StackPool, build_async_client

    client = build_async_client(api_key="sk-test", base_url="http://127.0.0.1:9/v1", timeout=5, max_retries=0)
    transport = client._client._transport
    assert isinstance(transport._pool, _StackPool)
