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


# --- the network backend: asyncio's streams, not anyio's -----------------------------------------------------
def test_the_model_clients_connections_do_not_go_through_anyio(server: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """anyio's cancel scope, task-state lookups and checkpoints around every read and write cost more CPU than the
    socket work: 7.8-7.9 against 9.0-9.8 ms of replica CPU per tutor turn (docs/benchmarks.md)."""
    from httpcore2._backends.anyio import AnyIOBackend

    async def refused(*_: object, **__: object) -> None:
        raise AssertionError("a model connection went through anyio")

    monkeypatch.setattr(AnyIOBackend, "connect_tcp", refused)

    async def scenario() -> list[bool]:
        async with _async_http_client() as http:
            replies = await asyncio.gather(*(http.post(server, json={"delay": 0.05}) for _ in range(5)))
            again = await http.post(server, json={"close": True})  # then a new connection
            return [r.json()["ok"] for r in [*replies, again, await http.post(server, json={})]]

    assert asyncio.run(scenario()) == [True] * 7


def test_a_slow_model_times_out_as_the_sdk_expects(server: str) -> None:
    import httpx2

    async def scenario() -> None:
        async with _async_http_client() as http:
            await http.post(server, json={"delay": 1.0}, timeout=httpx2.Timeout(5.0, read=0.2))

    with pytest.raises(httpx2.ReadTimeout):
        asyncio.run(scenario())


def test_an_unreachable_model_is_a_connect_error() -> None:
    import socket

    import httpx2

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        async with _async_http_client() as http:
            await http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})

    with pytest.raises(httpx2.ConnectError):
        asyncio.run(scenario())


def test_a_model_behind_tls_is_reached_over_tls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime
    import ssl

    import httpx2
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from aiteacher.openai_client import _StackPool

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://localhost:{httpd.server_address[1]}"

    async def scenario(trusted: bool) -> list[object]:
        client_context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem") if trusted else None)
        transport = httpx2.AsyncHTTPTransport()
        transport._pool = _StackPool(  # type: ignore[assignment]
            ssl_context=client_context, max_connections=4, max_keepalive=4, keepalive_expiry=5.0
        )
        async with httpx2.AsyncClient(transport=transport) as http:
            first, second = await http.post(url, json={}), await http.post(url, json={})
            stream = first.extensions["network_stream"]
            return [first.json()["ok"], second.json()["ok"], stream.get_extra_info("ssl_object") is not None]

    try:
        assert asyncio.run(scenario(trusted=True)) == [True, True, True]
        with pytest.raises(httpx2.ConnectError):  # an untrusted certificate fails the handshake
            asyncio.run(scenario(trusted=False))
    finally:
        httpd.shutdown()
        httpd.server_close()
