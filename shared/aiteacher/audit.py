"""Audit log: one JSON line per security-relevant event (UTC time, request id, actor, action, target,
outcome). Callers pass identifiers only; keys that look like secrets are dropped defensively."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="-")
function_var: ContextVar[str] = ContextVar("function", default="")

_FORBIDDEN_KEYS = ("password", "token", "secret", "authorization", "api_key")
_logger: logging.Logger | None = None


def _get_logger() -> logging.Logger:
    global _logger
    if _logger is None:
        from aiteacher.config import get_settings

        logger = logging.getLogger("aiteacher.audit")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not logger.handlers:
            stream = logging.StreamHandler(sys.stdout)
            stream.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(stream)
            path = get_settings().audit_log_file
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                file_handler = logging.FileHandler(path)
                file_handler.setFormatter(logging.Formatter("%(message)s"))
                logger.addHandler(file_handler)
        _logger = logger
    return _logger


def reset() -> None:
    global _logger
    if _logger is not None:
        for handler in list(_logger.handlers):
            handler.close()
            _logger.removeHandler(handler)
    _logger = None


def audit(action: str, outcome: str, *, actor: str | None = None, target: str | None = None, **details: Any) -> None:
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "kind": "audit",
        "request_id": request_id_var.get(),
        "function": function_var.get() or None,
        "actor": actor,
        "ip": client_ip_var.get(),
        "action": action,
        "target": target,
        "outcome": outcome,
    }
    for key, value in details.items():
        if not any(word in key.lower() for word in _FORBIDDEN_KEYS):
            record[key] = value
    _get_logger().info(json.dumps(record, default=str, separators=(",", ":")))
