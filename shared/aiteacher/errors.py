"""One error hierarchy, mapped to RFC 9457 problem details by `aiteacher.web`.

Domain code raises these; nothing else reaches a response body (no stack traces, SQL or secrets).
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.headers = headers or {}
        self.extra = extra or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://aiteacher.dev/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class ValidationFailed(AppError):
    status, code, title = 422, "validation_error", "Validation failed"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any):
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "Invalid credentials"


class InvalidToken(Unauthorized):
    code, title = "invalid_token", "Invalid or expired token"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None, headers: dict[str, str] | None = None, **kw: Any):
        merged = {"Retry-After": str(max(1, int(retry_after)))}
        merged.update(headers or {})
        super().__init__(detail or f"Too many requests; retry in {max(1, int(retry_after))} s", headers=merged, **kw)
        self.retry_after = max(1, int(retry_after))


class InternalError(AppError):
    status, code, title = 500, "internal_error", "Internal server error"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service temporarily unavailable"

    def __init__(self, detail: str | None = None, **kwargs: Any):
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(detail, **kwargs)
