"""The web layer every function shares: app factory, problem-details errors, request context,
CORS, rate limiting and the authentication / RBAC dependencies.

Importing this module costs little more than FastAPI itself: settings, Redis, JWT and the database
are touched on first use only.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aiteacher.audit import audit, client_ip_var, function_var, request_id_var
from aiteacher.errors import (
    AppError,
    Forbidden,
    InternalError,
    InvalidToken,
    PayloadTooLarge,
    Unauthorized,
    ValidationFailed,
)
from aiteacher.security.tokens import Claims

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("aiteacher.web")
PROBLEM_JSON = "application/problem+json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}
HEALTH_PATH = "/_/health"


def problem_response(error: AppError) -> JSONResponse:
    headers = dict(error.headers)
    headers["X-Request-ID"] = request_id_var.get()
    return JSONResponse(error.problem(), status_code=error.status, headers=headers, media_type=PROBLEM_JSON)


class RequestContextMiddleware:
    """Request id, client address and function name for logs and audit; X-Request-ID on every reply."""

    def __init__(self, app: ASGIApp, function_name: str):
        self.app = app
        self.function_name = function_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        tokens = (request_id_var.set(request_id), client_ip_var.set(_client_ip(scope, headers)),
                  function_var.set(self.function_name))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(tokens[0])
            client_ip_var.reset(tokens[1])
            function_var.reset(tokens[2])


def _client_ip(scope: Scope, headers: dict[str, str]) -> str:
    from aiteacher.config import get_settings

    hops = get_settings().trusted_proxy_hops
    peer = (scope.get("client") or ("unknown", 0))[0]
    if hops and headers.get("x-forwarded-for"):
        chain = [part.strip() for part in headers["x-forwarded-for"].split(",") if part.strip()]
        if chain:
            return chain[-min(hops, len(chain))]
    return peer


class BodyLimitMiddleware:
    """Refuse request bodies over a limit before they are read (Content-Length) or while they stream."""

    def __init__(self, app: ASGIApp, setting: str | None):
        self.app = app
        self.setting = setting

    def limit(self) -> int:
        from aiteacher.config import get_settings

        settings = get_settings()
        # Multipart framing adds a little to the file itself.
        return getattr(settings, self.setting) + 64 * 1024 if self.setting else settings.max_json_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await problem_response(PayloadTooLarge(f"The request body exceeds {limit} bytes"))(scope, receive, send)
                return
        received = 0

        async def bounded_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"The request body exceeds {limit} bytes")
            return message

        await self.app(scope, bounded_receive, send)


class SettingsCORSMiddleware:
    """CORS for the origins in settings; built when the first request arrives, not at import."""

    def __init__(self, app: ASGIApp):
        from starlette.middleware.cors import CORSMiddleware

        from aiteacher.config import get_settings

        origins = get_settings().cors_origins
        if not origins:  # no browser origin allowed: nothing to answer, nothing to add
            self.app = app
            return
        self.app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                            "RateLimit-Reset", "RateLimit-Policy", "Location"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# --- error handlers -------------------------------------------------------------------------------

async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type")}
              for err in exc.errors()]
    detail = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem_response(ValidationFailed(detail or "The request is not valid", extra={"errors": errors}))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = AppError(str(exc.detail) if exc.detail else None, code=_HTTP_CODES.get(exc.status_code, "http_error"),
                     headers=dict(exc.headers or {}))
    error.status = exc.status_code
    error.title = _HTTP_CODES.get(exc.status_code, "error").replace("_", " ").capitalize()
    return problem_response(error)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error (request %s)", request_id_var.get(), exc_info=exc)
    return problem_response(InternalError("An unexpected error occurred; quote the request id when reporting it"))


# --- authentication and rate limiting -------------------------------------------------------------
#
# One app-level dependency, `admit`, runs before every route: it verifies the bearer token (if any)
# and, in a single Redis round trip, checks the token deny-list and counts the request against the
# caller's sliding window. The per-route `CurrentUser` / `OptionalUser` dependencies then only read
# what `admit` found, so an authenticated request costs one thread hop and one Redis call.


def _decode_bearer(request: Request) -> Claims | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Use 'Authorization: Bearer <access token>'")
    from aiteacher.security.tokens import decode

    return decode(token.strip(), "access")


async def admit(request: Request, response: Response) -> None:
    """Authenticate, check revocation and rate-limit per caller (user id, or client IP when anonymous
    or the token is bad) per function."""
    request.state.claims, request.state.auth_error = None, None
    if request.url.path == HEALTH_PATH:
        return
    from aiteacher import ratelimit
    from aiteacher.cache import deny_keys
    from aiteacher.config import get_settings
    from aiteacher.errors import RateLimited
    from aiteacher.identity import profiles

    try:
        claims = _decode_bearer(request)
    except InvalidToken as exc:
        claims, request.state.auth_error = None, exc
    function = function_var.get() or "unknown"
    settings = get_settings()
    limit, window = settings.rate_limit_for(function)
    if claims and claims.role == "admin":
        limit *= settings.rate_limit_admin_multiplier
    caller = f"user:{claims.sub}" if claims else f"ip:{client_ip_var.get()}"
    decision = await ratelimit.hit_async(f"{function}:{caller}", limit, window,
                                         deny_keys=deny_keys(claims.iss, claims.jti, claims.fam) if claims else (),
                                         fetch_key=profiles.cache_key(claims.sub) if claims else None)
    if claims:
        profiles.accept_prefetched(claims.sub, decision.fetched)
    if decision.revoked:
        request.state.auth_error = InvalidToken("The token has been revoked", code="token_revoked")
        return
    if not decision.allowed:
        audit("ratelimit", "rejected", actor=claims.sub if claims else None, target=function)
        raise RateLimited(decision.reset_seconds, headers=decision.headers())
    request.state.claims = claims
    if claims:
        from aiteacher.db import reading_as

        reading_as(claims.sub)  # read-your-writes on a replica (aiteacher.db)
    response.headers.update(decision.headers())


async def optional_user(request: Request) -> Claims | None:
    error = getattr(request.state, "auth_error", None)
    if error is not None:
        raise error
    return getattr(request.state, "claims", None)


async def current_user(request: Request) -> Claims:
    claims = await optional_user(request)
    if claims is None:
        raise Unauthorized("Sign in: this endpoint needs 'Authorization: Bearer <access token>'")
    return claims


CurrentUser = Annotated[Claims, Depends(current_user)]
OptionalUser = Annotated[Claims | None, Depends(optional_user)]


def require_roles(*roles: str) -> Callable[..., Any]:
    async def dependency(user: CurrentUser) -> Claims:
        if user.role not in roles:
            audit("rbac.check", "denied", actor=user.sub, role=user.role, required=list(roles))
            raise Forbidden(f"This action needs one of the roles: {', '.join(roles)}")
        return user

    return dependency


def client_ip() -> str:
    return client_ip_var.get()


# --- app factory ----------------------------------------------------------------------------------

def create_app(function_name: str, summary: str, max_body_setting: str | None = None) -> FastAPI:
    """A function's app. Bodies are capped at MAX_JSON_BODY_BYTES, or at the named setting (uploads)."""
    app = FastAPI(
        title=f"AI-Teacher: {function_name}",
        summary=summary,
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(admit)],
    )
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(BodyLimitMiddleware, setting=max_body_setting)
    app.add_middleware(SettingsCORSMiddleware)
    app.add_middleware(RequestContextMiddleware, function_name=function_name)

    @app.get(HEALTH_PATH, include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "function": function_name}

    return app


def lambda_handler(app: FastAPI) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """AWS Lambda entry point (Function URL, API Gateway, ALB) through Mangum, built on first call.

    Behind an API Gateway route on the function's REST alias (API_GATEWAY_BASE_PATH, e.g.
    /auth/login) the alias is stripped, as OpenFaaS strips /function/<name>: the app sees `/...`."""
    adapters: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not adapters:
            from mangum import Mangum

            adapters.append(Mangum(app, lifespan="off"))
        return adapters[0](_strip_base_path(event), context)

    return handler


def _strip_base_path(event: dict[str, Any]) -> dict[str, Any]:
    from aiteacher.config import get_settings

    base = get_settings().api_gateway_base_path.rstrip("/")
    if not base:
        return event

    def strip(path: str) -> str:
        if path == base or path.startswith(base + "/"):
            return path[len(base):] or "/"
        return path

    event = dict(event)
    if isinstance(event.get("rawPath"), str):  # HTTP API (v2) and Function URLs
        event["rawPath"] = strip(event["rawPath"])
        http = (event.get("requestContext") or {}).get("http")
        if isinstance(http, dict) and isinstance(http.get("path"), str):
            event["requestContext"] = {**event["requestContext"], "http": {**http, "path": strip(http["path"])}}
    if isinstance(event.get("path"), str):  # REST API (v1) and ALB
        event["path"] = strip(event["path"])
    return event
