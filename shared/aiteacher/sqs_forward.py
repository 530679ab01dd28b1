"""`aiteacher events sqs-forward`: S3/LocalStack -> SQS -> object-created function.

Long-polls the queue, POSTs each message body to the function with the events token and deletes the
message only after a 2xx; a transient failure (5xx, 429, unreachable) leaves it for redelivery (SQS
visibility timeout), so a down function loses nothing. A message the function can never accept (not
JSON, 400/413/415/422) or that has been received EVENTS_MAX_RECEIVES times goes to the dead-letter
queue (EVENTS_DLQ_URL, else the queue's own RedrivePolicy target) instead of looping forever. Delivery is
at least once; the function deduplicates.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("aiteacher.sqs_forward")
PERMANENT = {400, 413, 415, 422}  # the same body will be refused again: no point redelivering it


@dataclass
class ForwardStats:
    forwarded: int = 0
    failed: int = 0
    dead_lettered: int = 0


def post_event(target: str, token: str, body: str, timeout: float = 30.0) -> int:
    request = urllib.request.Request(  # noqa: S310 - the target is an operator-configured http(s) URL
        target,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        log.warning("object-created unreachable: %s", exc)
        return 0


def dead_letter_url(sqs: Any, queue_url: str) -> str | None:
    """EVENTS_DLQ_URL, else the target of the queue's RedrivePolicy, else None."""
    from aiteacher.config import get_settings

    configured = get_settings().events_dlq_url
    if configured:
        return configured
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
        arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
        return str(sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"])
    except Exception:  # noqa: BLE001 - no redrive policy (or no permission to read it)
        return None


def _dead_letter(sqs: Any, queue_url: str, message: dict[str, Any], reason: str, stats: ForwardStats) -> None:
    target = dead_letter_url(sqs, queue_url)
    if target:
        sqs.send_message(
            QueueUrl=target,
            MessageBody=message.get("Body", ""),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:200]}},
        )
        log.error("moved a message to the dead-letter queue: %s", reason)
    else:
        log.error("dropping a message (no dead-letter queue configured): %s", reason)
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    stats.dead_lettered += 1


def forward_once(
    sqs: Any, queue_url: str, target: str, token: str, wait_seconds: int = 10, stats: ForwardStats | None = None
) -> int:
    """One receive round; returns how many messages were forwarded and deleted."""
    from aiteacher.config import get_settings

    max_receives = get_settings().events_max_receives
    stats = stats or ForwardStats()
    reply = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["ApproximateReceiveCount"],
    )
    done = 0
    for message in reply.get("Messages", []):
        body = message.get("Body", "")
        receives = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            _dead_letter(sqs, queue_url, message, f"not JSON ({len(body)} bytes)", stats)
            continue
        status = post_event(target, token, body)
        if 200 <= status < 300:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            stats.forwarded += 1
            done += 1
        elif status in PERMANENT:
            stats.failed += 1
            _dead_letter(sqs, queue_url, message, f"object-created refused it ({status})", stats)
        elif receives >= max_receives:
            stats.failed += 1
            _dead_letter(
                sqs,
                queue_url,
                message,
                f"still failing after {receives} deliveries (last: {status or 'unreachable'})",
                stats,
            )
        else:
            stats.failed += 1
            log.warning(
                "object-created answered %s; the message stays for redelivery (%d/%d)",
                status or "nothing",
                receives,
                max_receives,
            )
    return done


def run(
    queue_url: str,
    target: str,
    token: str,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    wait_seconds: int = 10,
) -> ForwardStats:
    from aiteacher.storage import get_sqs

    sqs = get_sqs()
    stats = ForwardStats()
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            forward_once(sqs, queue_url, target, token, wait_seconds=wait_seconds, stats=stats)
        except Exception:
            log.exception("receive failed; retrying")
            stop.wait(2)
        if once:
            break
    return stats
