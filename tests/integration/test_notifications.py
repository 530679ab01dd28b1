"""Notifications over real SMTP: an aiosmtpd sink on 127.0.0.1 receives the mail; a failing mail server
is retried and never fails the job that triggered it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from email import message_from_bytes

import pytest

from tests.helpers import hierarchy, make_pdf, place, run_jobs, signed_in, upload


class Sink:
    """Collects messages; the first `fail_first` deliveries get a temporary 451 error."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.attempts = 0
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return "451 4.3.0 Try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_sink(monkeypatch) -> Iterator[Sink]:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    from aiteacher.config import reset_caches

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("NOTIFICATION_RETRY_INTERVALS", "[0, 0, 0]")
    reset_caches()
    yield sink
    controller.stop()
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def academic(client, admin_token) -> dict:
    user = signed_in(client, "academic", admin_token)
    place(client, user, hierarchy(client)[2], 6)
    return user


def test_document_ready_mail_reaches_the_uploader(client, academic, smtp_sink) -> None:
    response = upload(
        client,
        academic,
        make_pdf([["Kant distinguishes analytic from synthetic judgements."]]),
        course="epistemology",
        filename="kant.pdf",
    )
    assert response.status_code == 202
    run_jobs()
    mails = [m for m in smtp_sink.messages if m["To"] == academic["email"]]
    assert len(mails) == 1 and "is ready" in mails[0]["Subject"]


def test_failed_document_mail_says_why(client, academic, smtp_sink) -> None:
    response = upload(client, academic, b"%PDF-1.7\n" + b"\x00" * 64, course="epistemology", filename="broken.pdf")
    assert response.status_code == 202
    run_jobs()
    mail = next(m for m in smtp_sink.messages if m["To"] == academic["email"])
    assert "could not be ingested" in mail["Subject"]


def test_failing_mail_server_is_retried_and_never_fails_the_ingestion(client, academic, smtp_sink) -> None:
    smtp_sink.fail_first = 2
    response = upload(
        client,
        academic,
        make_pdf([["Hume's fork splits relations of ideas and matters of fact."]]),
        course="epistemology",
        filename="hume.pdf",
    )
    run_jobs()
    document = client.get(f"/documents/{response.json()['document_id']}", headers=academic["headers"]).json()
    assert document["status"] == "ready"
    assert smtp_sink.attempts == 3
    assert len([m for m in smtp_sink.messages if m["To"] == academic["email"]]) == 1


def test_exam_ready_mail_reaches_the_creator(client, academic, smtp_sink) -> None:
    upload(
        client,
        academic,
        make_pdf(
            [
                [
                    "Descartes doubts everything except that he is thinking.",
                    "The cogito is the foundation of his epistemology.",
                    "Rationalism holds that reason is the chief source of knowledge.",
                ]
            ]
        ),
        course="rationalism",
        filename="descartes.pdf",
    )
    run_jobs()
    student = signed_in(client)
    place(client, student, hierarchy(client)[2], 6)
    response = client.post(
        "/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 1, "course": "rationalism"}
    )
    assert response.status_code == 202
    run_jobs()
    assert any(m["To"] == student["email"] and "exam" in m["Subject"].lower() for m in smtp_sink.messages)


class FakeFcm:
    """OAuth token endpoint + FCM HTTP v1 messages:send on 127.0.0.1, recording what arrives."""

    def __init__(self, fail_first: int = 0):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.assertions: list[str] = []
        self.messages: list[dict] = []
        self.fail_first = fail_first
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

            def do_POST(self) -> None:
                from urllib.parse import parse_qs

                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/token":
                    fake.assertions.append(parse_qs(raw.decode())["assertion"][0])
                    self._reply(200, {"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"})
                elif self.path.endswith("/messages:send"):
                    if self.headers.get("Authorization") != "Bearer ya29.fake":
                        self._reply(401, {"error": {"status": "UNAUTHENTICATED"}})
                    elif fake.fail_first > 0:
                        fake.fail_first -= 1
                        self._reply(503, {"error": {"status": "UNAVAILABLE"}})
                    else:
                        message = json.loads(raw)["message"]
                        if message["token"] == "gone-device":
                            self._reply(
                                404, {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}}
                            )
                            return
                        fake.messages.append(message)
                        self._reply(200, {"name": f"projects/p/messages/{len(fake.messages)}"})
                else:
                    self._reply(404, {})

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fcm(monkeypatch, tmp_path, smtp_sink) -> Iterator[FakeFcm]:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from aiteacher import push
    from aiteacher.config import reset_caches

    fake = FakeFcm()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    credentials = tmp_path / "service-account.json"
    credentials.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "push@p.iam.example",
                "private_key": pem,
                "token_uri": f"{fake.url}/token",
            }
        )
    )
    monkeypatch.setenv("FCM_PROJECT_ID", "p")
    monkeypatch.setenv("FCM_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("FCM_BASE_URL", fake.url)
    push.reset()
    reset_caches()
    fake.public_key = key.public_key()  # type: ignore[attr-defined]
    yield fake
    fake.stop()
    push.reset()


def test_push_reaches_the_device_and_mail_is_not_repeated(client, academic, fcm, smtp_sink) -> None:
    import jwt

    assert client.put("/me", headers=academic["headers"], json={"push_token": "device-123"}).json()["push_enabled"]
    fcm.fail_first = 1  # FCM hiccups once: the push job retries, the mail job is not repeated
    upload(
        client,
        academic,
        make_pdf([["Locke calls the mind a blank slate at birth."]]),
        course="empiricism",
        filename="locke.pdf",
    )
    run_jobs()
    assert [m["token"] for m in fcm.messages] == ["device-123"]
    assert "is ready" in fcm.messages[0]["notification"]["title"]
    assert len([m for m in smtp_sink.messages if m["To"] == academic["email"]]) == 1
    claims = jwt.decode(fcm.assertions[0], fcm.public_key, algorithms=["RS256"], audience=f"{fcm.url}/token")
    assert claims["scope"].endswith("firebase.messaging") and claims["iss"] == "push@p.iam.example"


def test_unregistered_device_token_is_forgotten(client, academic, fcm) -> None:
    client.put("/me", headers=academic["headers"], json={"push_token": "gone-device"})
    upload(
        client,
        academic,
        make_pdf([["Berkeley: to be is to be perceived."]]),
        course="empiricism",
        filename="berkeley.pdf",
    )
    run_jobs()
    assert fcm.messages == []
    assert client.get("/me", headers=academic["headers"]).json()["push_enabled"] is False
