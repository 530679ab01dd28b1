"""Notifications over real SMTP: an aiosmtpd sink on 127.0.0.1 receives the mail; a failing mail server
is retried and never fails the job that triggered it."""

from __future__ import annotations

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
    response = upload(client, academic, make_pdf([["Kant distinguishes analytic from synthetic judgements."]]),
                      course="epistemology", filename="kant.pdf")
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
    response = upload(client, academic, make_pdf([["Hume's fork splits relations of ideas and matters of fact."]]),
                      course="epistemology", filename="hume.pdf")
    run_jobs()
    document = client.get(f"/documents/{response.json()['document_id']}", headers=academic["headers"]).json()
    assert document["status"] == "ready"
    assert smtp_sink.attempts == 3
    assert len([m for m in smtp_sink.messages if m["To"] == academic["email"]]) == 1


def test_exam_ready_mail_reaches_the_creator(client, academic, smtp_sink) -> None:
    upload(client, academic, make_pdf([["Descartes doubts everything except that he is thinking.",
                                        "The cogito is the foundation of his epistemology.",
                                        "Rationalism holds that reason is the chief source of knowledge."]]),
           course="rationalism", filename="descartes.pdf")
    run_jobs()
    student = signed_in(client)
    place(client, student, hierarchy(client)[2], 6)
    response = client.post("/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 1,
                                                                          "course": "rationalism"})
    assert response.status_code == 202
    run_jobs()
    assert any(m["To"] == student["email"] and "exam" in m["Subject"].lower() for m in smtp_sink.messages)
