"""`aiteacher events sqs-forward`: S3/LocalStack -> SQS -> object-created function.

Long-polls the queue, POSTs each message body to the function with the events token and deletes the
message only after a 2xx; anything else leaves it for redelivery (SQS visibility timeout), so a down
function loses nothing. Delivery is at least once; the function deduplicates.
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


@dataclass
class ForwardStats:
    forwarded: int = 0
    failed: int = 0


def post_event(target: str, token: str, body: str, timeout: float = 30.0) -> int:
    request = urllib.request.Request(  # noqa: S310 - the target is an operator-configured http(s) URL
        target, data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        log.warning("object-created unreachable: %s", exc)
        return 0


def forward_once(sqs: Any, queue_url: str, target: str, token: str, wait_seconds: int = 10,
                 stats: ForwardStats | None = None) -> int:
    """One receive round; returns how many messages were forwarded and deleted."""
    stats = stats or ForwardStats()
    reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
    done = 0
    for message in reply.get("Messages", []):
        body = message.get("Body", "")
        try:
            json.loads(body)
        except ValueError:
            log.error("dropping a message that is not JSON (%d bytes)", len(body))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            continue
        status = post_event(target, token, body)
        if 200 <= status < 300:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            stats.forwarded += 1
            done += 1
        else:
            stats.failed += 1
            log.warning("object-created answered %s; the message stays for redelivery", status or "nothing")
    return done


def run(queue_url: str, target: str, token: str, *, once: bool = False, stop: threading.Event | None = None,
        wait_seconds: int = 10) -> ForwardStats:
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
