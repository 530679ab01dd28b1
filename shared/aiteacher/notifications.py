"""Notifications: an RQ job per message and channel, so a failing mail server is retried on its own
schedule and never fails the job that triggered it. Mail goes over SMTP when SMTP_URL is set,
otherwise to an outbox under DATA_DIR (`outbox.jsonl`) and the log; push goes over FCM HTTP v1 when
FCM_PROJECT_ID and FCM_CREDENTIALS_FILE are set."""

from __future__ import annotations

import json
import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from aiteacher.audit import audit
from aiteacher.enums import DocumentStatus, ExamStatus, Role
from aiteacher.jobs import job

if TYPE_CHECKING:
    from aiteacher.config import Settings

log = logging.getLogger("aiteacher.notifications")


def queue_notification(
    user_ids: list[str], subject: str, body: str, kind: str, *, dedupe_key: str | None = None
) -> None:
    """Enqueue delivery jobs (IDs and text only): mail always, push when FCM is configured. Each
    channel is its own job, so a retry of one never repeats the other. `dedupe_key` makes a repeat
    enqueue a no-op."""
    from aiteacher import push

    if not user_ids:
        return
    channels = [("mail", deliver)] + ([("push", deliver_push)] if push.configured() else [])
    for channel, delivery in channels:
        delivery.enqueue(
            sorted(set(user_ids)),
            subject,
            body,
            kind,
            job_id=f"notify-{channel}-{dedupe_key}" if dedupe_key else None,
            unique=bool(dedupe_key),
        )


def _retries(settings: Settings) -> int:
    return len(settings.notification_retry_intervals)


def _intervals(settings: Settings) -> list[int]:
    return list(settings.notification_retry_intervals)


@job(queue="notifications", retries=_retries, retry_intervals=_intervals)
def deliver(user_ids: list[str], subject: str, body: str, kind: str) -> dict[str, Any]:
    from sqlalchemy import select

    from aiteacher.config import get_settings
    from aiteacher.db import transaction
    from aiteacher.db.models import User

    with transaction(read_only=True) as session:
        emails = list(session.scalars(select(User.email).where(User.id.in_(user_ids), User.is_active.is_(True))))
    settings = get_settings()
    if settings.smtp_url:
        _send_smtp(settings.smtp_url, settings.smtp_starttls, settings.smtp_from, emails, subject, body)
        channel = "smtp"
    else:
        _write_outbox(emails, subject, body, kind)
        channel = "outbox"
    audit("notification.sent", "ok", target=kind, recipients=len(emails), channel=channel)
    return {"recipients": len(emails), "channel": channel}


@job(queue="notifications", retries=_retries, retry_intervals=_intervals)
def deliver_push(user_ids: list[str], subject: str, body: str, kind: str) -> dict[str, Any]:
    from sqlalchemy import select, update

    from aiteacher import push
    from aiteacher.db import transaction
    from aiteacher.db.models import User

    with transaction(read_only=True) as session:
        tokens = {
            row.id: row.push_token
            for row in session.execute(
                select(User.id, User.push_token).where(
                    User.id.in_(user_ids), User.is_active.is_(True), User.push_token.is_not(None)
                )
            )
        }
    stale = push.send(tokens, subject, body) if tokens else []
    if stale:
        from aiteacher.identity import profiles

        with transaction() as session:
            session.execute(update(User).where(User.id.in_(stale)).values(push_token=None))
            profiles.forget_after_commit(session, *stale)
    audit(
        "notification.sent", "ok", target=kind, recipients=len(tokens) - len(stale), channel="fcm", forgotten=len(stale)
    )
    return {"recipients": len(tokens), "stale": len(stale)}


def _send_smtp(url: str, starttls: bool, sender: str, recipients: list[str], subject: str, body: str) -> None:
    parts = urlsplit(url)
    secure = parts.scheme == "smtps"
    host, port = parts.hostname or "127.0.0.1", parts.port or (465 if secure else 25)
    client_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with client_class(host, port, timeout=15) as client:
        if starttls and not secure:
            client.starttls()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        for recipient in recipients:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, recipient, subject
            message.set_content(body)
            client.send_message(message)


def _write_outbox(recipients: list[str], subject: str, body: str, kind: str) -> None:
    from aiteacher.config import get_settings

    path = get_settings().data_dir / "outbox.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as outbox:
        for recipient in recipients:
            outbox.write(
                json.dumps(
                    {
                        "time": datetime.now(UTC).isoformat(),
                        "to": recipient,
                        "subject": subject,
                        "body": body,
                        "kind": kind,
                    }
                )
                + "\n"
            )
    log.info("outbox: %s -> %d recipient(s)", subject, len(recipients))


# --- what we notify about -------------------------------------------------------------------------


def notify_document_outcome(document_id: str) -> None:
    from aiteacher.db import transaction
    from aiteacher.db.models import Document

    with transaction(read_only=True) as session:
        doc = session.get(Document, document_id)
        if doc is None or doc.uploaded_by is None or doc.status not in (DocumentStatus.READY, DocumentStatus.FAILED):
            return
        if doc.status == DocumentStatus.READY:
            subject = f"'{doc.title}' is ready"
            body = f"'{doc.title}' ({doc.course}) was ingested: {doc.pages} pages, {doc.chunks} passages searchable."
        else:
            subject = f"'{doc.title}' could not be ingested"
            body = f"'{doc.title}' ({doc.course}) failed: {doc.error}"
        queue_notification(
            [doc.uploaded_by], subject, body, f"document.{doc.status}", dedupe_key=f"doc-{doc.id}-{doc.status}"
        )


def notify_exam_ready(exam_id: str) -> None:
    from aiteacher.db import transaction
    from aiteacher.db.models import Exam

    with transaction(read_only=True) as session:
        exam = session.get(Exam, exam_id)
        if exam is None or exam.created_by is None:
            return
        subject = (
            "Your practice exam is ready" if exam.status == ExamStatus.READY else "Your exam could not be generated"
        )
        body = (
            f"Exam {exam.id}: {len(exam.questions)} questions{f' on {exam.topic}' if exam.topic else ''}."
            if exam.status == ExamStatus.READY
            else f"Exam {exam.id} failed: {exam.error}"
        )
        queue_notification([exam.created_by], subject, body, f"exam.{exam.status}", dedupe_key=f"exam-{exam.id}")


FLAG_DIGEST_SECONDS = 3600


def notify_flagged_message(
    faculty_id: int | None, session_id: str, categories: list[str], *, course: str | None = None
) -> None:
    """A digest for the course's academics, at most one mail per session per hour (no message text in it).

    Every flag is counted in Redis under the session; the first flag after a quiet hour takes the hour's
    window (SET NX EX) and mails everything counted so far, so a student flagged 20 times in an hour causes
    one mail, and the next mail (on a flag after the hour) says how many more came in between. The
    recipients are the academics who put material into the session's course in that faculty, or every
    academic of the faculty when there is no course or no such uploader."""
    from aiteacher.cache import get_redis

    if faculty_id is None:
        return
    redis = get_redis()
    prefix = f"flag-digest:{session_id}"
    with redis.pipeline() as pipe:
        pipe.incr(f"{prefix}:count")
        pipe.sadd(f"{prefix}:categories", *(categories or ["unspecified"]))
        pipe.expire(f"{prefix}:count", 7 * 24 * 3600)
        pipe.expire(f"{prefix}:categories", 7 * 24 * 3600)
        pipe.execute()
    window = int(datetime.now(UTC).timestamp()) // FLAG_DIGEST_SECONDS
    if not redis.set(f"{prefix}:window", window, nx=True, ex=FLAG_DIGEST_SECONDS):
        return  # this session already mailed within the hour: the count waits for the next digest
    with redis.pipeline() as pipe:
        pipe.getset(f"{prefix}:count", 0)
        pipe.smembers(f"{prefix}:categories")
        pipe.delete(f"{prefix}:categories")
        pipe.incr(f"{prefix}:digests")  # this digest's number: its job id, so a new digest is never deduped away
        pipe.expire(f"{prefix}:digests", 7 * 24 * 3600)
        count_raw, members, _, digest_number, _ = pipe.execute()
    count = int(count_raw or 0)
    if count <= 0:
        return
    named = sorted(member.decode() if isinstance(member, bytes) else str(member) for member in members)
    recipients = course_academics(faculty_id, course)
    messages = "1 message" if count == 1 else f"{count} messages"
    queue_notification(
        recipients,
        "A tutor conversation needs attention",
        f"{messages} in tutoring session {session_id}{f' ({course})' if course else ''} "
        f"{'was' if count == 1 else 'were'} flagged since the last notice ({', '.join(named)}). "
        "Please review the session according to your faculty's welfare procedure. You get at most "
        "one such notice per session per hour.",
        "chat.flagged",
        dedupe_key=f"flag-{session_id}-{digest_number}",
    )


def course_academics(faculty_id: int, course: str | None) -> list[str]:
    from sqlalchemy import select

    from aiteacher.db import transaction
    from aiteacher.db.models import Document, User

    with transaction(read_only=True) as session:
        academics = select(User.id).where(
            User.faculty_id == faculty_id, User.role == Role.ACADEMIC, User.is_active.is_(True)
        )
        if course:
            owners = list(
                session.scalars(
                    academics.where(
                        User.id.in_(
                            select(Document.uploaded_by).where(
                                Document.faculty_id == faculty_id, Document.course == course
                            )
                        )
                    )
                )
            )
            if owners:
                return owners
        return list(session.scalars(academics))
