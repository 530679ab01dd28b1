"""The web layer every function shares: app factory, problem-details errors, request context,
CORS, rate limiting and the authentication / RBAC dependencies.

Importing this module costs little more than FastAPI itself: settings, Redis, JWT and the database
are touched on first use only.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aiteacher.audit import audit, client_ip_var, function_var, request_id_var
from aiteacher.enums import Role
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
    from sqlalchemy.orm import Session
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("aiteacher.web")
PROBLEM_JSON = "application/problem+json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
HEALTH_PATH = "/_/health"


SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
# Swagger UI at /docs runs its own scripts and styles, served from this origin (aiteacher.swagger).
DOCS_CSP = b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"


def problem_response(error: AppError) -> JSONResponse:
    # X-Request-ID is added once, by RequestContextMiddleware, to every reply.
    return JSONResponse(error.problem(), status_code=error.status, headers=dict(error.headers), media_type=PROBLEM_JSON)


class RequestContextMiddleware:
    """Request id, client address and function name for logs and audit; exactly one X-Request-ID and the
    security headers on every reply, 500s included (an unhandled error is answered here, inside the
    request's context, rather than by Starlette's outermost ServerErrorMiddleware, which runs after it)."""

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
        tokens = (
            request_id_var.set(request_id),
            client_ip_var.set(_client_ip(scope, headers)),
            function_var.set(self.function_name),
        )
        own = {b"x-request-id", *(name for name, _ in SECURITY_HEADERS)}
        started = False

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = list(message.get("headers") or [])
                csp = next((value for name, value in present if name.lower() == b"content-security-policy"), None)
                kept = [(name, value) for name, value in present if name.lower() not in own]
                extra = [
                    (name, csp if name == b"content-security-policy" and csp else value)
                    for name, value in SECURITY_HEADERS
                ]
                message["headers"] = [*kept, (b"x-request-id", request_id.encode()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("unhandled error (request %s)", request_id, exc_info=exc)
            if started:
                raise
            response = problem_response(
                InternalError("An unexpected error occurred; quote the request id when reporting it")
            )
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(tokens[0])
            client_ip_var.reset(tokens[1])
            function_var.reset(tokens[2])


def _client_ip(scope: Scope, headers: dict[str, str]) -> str:
    from aiteacher.config import get_settings
    from aiteacher.proxies import client_address

    peer = (scope.get("client") or ("unknown", 0))[0]
    return client_address(peer, headers.get("x-forwarded-for"), get_settings().trusted_proxy_networks)


class BodyLimitMiddleware:
    """Refuse request bodies over a limit: before they are read (Content-Length) and while they stream
    (chunked bodies, as of-watchdog re-sends them, carry no Content-Length). Past the limit the client
    gets a 413 problem and the app sees a disconnect; whatever it answers then is dropped."""

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
        too_large = PayloadTooLarge(f"The request body exceeds {limit} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await problem_response(too_large)(scope, receive, send)
                return
        received = 0
        refused = False
        response_started = False

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        async def bounded_receive() -> MutableMapping[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not response_started:
                    await problem_response(too_large)(scope, receive, send)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not refused:
                raise


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
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
                "Location",
            ],
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
    errors = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type")}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem_response(ValidationFailed(detail or "The request is not valid", extra={"errors": errors}))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = AppError(
        str(exc.detail) if exc.detail else None,
        code=_HTTP_CODES.get(exc.status_code, "http_error"),
        headers=dict(exc.headers or {}),
    )
    error.status = exc.status_code
    error.title = _HTTP_CODES.get(exc.status_code, "error").replace("_", " ").capitalize()
    return problem_response(error)


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
    from aiteacher import accounts, ratelimit
    from aiteacher.cache import deny_keys
    from aiteacher.config import get_settings
    from aiteacher.errors import RateLimited

    try:
        claims = _decode_bearer(request)
    except InvalidToken as exc:
        claims, request.state.auth_error = None, exc
    function = function_var.get() or "unknown"
    settings = get_settings()
    # The dev gateway serves every function in one process: it gives each app its stack.yml limit.
    base_limit, window = settings.rate_limit_for(function, getattr(request.app.state, "rate_limit", None))
    limit = base_limit * settings.rate_limit_admin_multiplier if claims and claims.role == Role.ADMIN else base_limit
    caller = f"user:{claims.sub}" if claims else f"ip:{client_ip_var.get()}"
    account = accounts.provider() if claims else None
    decision = await ratelimit.hit_async(
        f"{function}:{caller}",
        limit,
        window,
        deny_keys=deny_keys(claims.iss, claims.jti, claims.fam) if claims else (),
        fetch_key=account.cache_key(claims.sub) if claims and account else None,
    )
    if claims and decision.revoked:
        # A revoked token is an anonymous caller: it is counted against its address like any other, so
        # presenting a logged-out token never switches the limit off.
        request.state.auth_error = InvalidToken("The token has been revoked", code="token_revoked")
        claims = None
        decision = await ratelimit.hit_async(f"{function}:ip:{client_ip_var.get()}", base_limit, window)
    elif claims and account:
        account.accept_prefetched(claims.sub, decision.fetched)
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
    claims = getattr(request.state, "claims", None)
    if claims is not None:
        from aiteacher.accounts import provider

        await provider().admit_token(claims)  # role changes and deactivation refuse older tokens on the next request
    return claims


async def current_user(request: Request) -> Claims:
    claims = await optional_user(request)
    if claims is None:
        raise Unauthorized("Sign in: this endpoint needs 'Authorization: Bearer <access token>'")
    return claims


CurrentUser = Annotated[Claims, Depends(current_user)]
OptionalUser = Annotated[Claims | None, Depends(optional_user)]


# --- the request's database session ---------------------------------------------------------------
#
# `Db` (primary) and `ReadDb` (replica when set) are opened on first use and closed when the handler
# returns, *before* the reply is sent (`scope="function"`): the commit has happened when the client sees
# a 2xx, an error in the handler rolls back and becomes its problem reply, and a failed commit becomes a
# problem reply (503 when the database is unreachable), never a 200. The chat turn does not use them: it
# holds no connection while the model answers (`aiteacher.tutor.service`).


def _write_session() -> Iterator[Session]:
    from aiteacher.db import request_session

    # A LazySession stands in for the Session it opens on first use (attribute access goes through).
    yield from cast("Iterator[Session]", request_session())


def _read_session() -> Iterator[Session]:
    from aiteacher.db import request_session

    yield from cast("Iterator[Session]", request_session(read_only=True))


Db = Annotated["Session", Depends(_write_session, scope="function")]
ReadDb = Annotated["Session", Depends(_read_session, scope="function")]


def require_roles(*roles: Role) -> Callable[..., Any]:
    async def dependency(user: CurrentUser) -> Claims:
        if user.role not in roles:
            audit("rbac.check", "denied", actor=user.sub, role=user.role, required=list(roles))
            raise Forbidden(f"This action needs one of the roles: {', '.join(roles)}")
        return user

    return dependency


def client_ip() -> str:
    return client_ip_var.get()


# --- app factory ----------------------------------------------------------------------------------


def create_app(
    function_name: str, summary: str, max_body_setting: str | None = None, *, oldest_first: bool = False
) -> FastAPI:
    """A function's app. Bodies are capped at MAX_JSON_BODY_BYTES, or at the named setting (uploads).
    `oldest_first`: served by `aiteacher.serve`, its requests run in arrival order (`aiteacher.scheduling`); only
    for an app whose every wait on the network or a thread is an `off_cpu()` (a sync endpoint's is not)."""
    app = FastAPI(
        title=f"AI-Teacher: {function_name}",
        summary=summary,
        version="0.1.0",
        # The gateway serves the docs page (assets local, no CDN); each function publishes its OpenAPI.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(admit)],
        # Traces are aiteacher.observability's (with_tracing, when OTEL_* asks for them); FastAPI's own
        # telemetry would only look up the OpenTelemetry providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.oldest_first = oldest_first
    app.openapi = lambda: _openapi_with_security_and_problems(app)  # type: ignore[method-assign]
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimitMiddleware, setting=max_body_setting)
    app.add_middleware(SettingsCORSMiddleware)
    app.add_middleware(RequestContextMiddleware, function_name=function_name)

    @app.get(HEALTH_PATH, include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "function": function_name}

    return app


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine-readable code"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "Validation errors (422)"},
    },
}
_ERROR_STATUSES = {
    400: "Malformed request",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests (see Retry-After)",
    500: "Unexpected error (quote the X-Request-ID)",
    503: "A backing service is unavailable",
}
_AUTH_STATUSES = {401: "Missing, invalid, expired or revoked token", 403: "The caller's role may not do this"}


def _auth_kind(dependant: Any) -> str | None:
    """'required' when a route depends on current_user (directly or through a role check), 'optional'
    for optional_user, None for anonymous routes."""
    calls = set()
    stack = [dependant]
    while stack:
        node = stack.pop()
        calls.add(node.call)
        stack.extend(node.dependencies)
    if current_user in calls:
        return "required"
    return "optional" if optional_user in calls else None


def _openapi_with_security_and_problems(app: FastAPI) -> dict[str, Any]:
    """The function's OpenAPI with bearer security on authenticated operations and every error response
    documented as application/problem+json (FastAPI's own 422 schema is replaced by the problem)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        auth = _auth_kind(route.dependant)
        path = route.path_format
        for method in route.methods or ():
            operation = document.get("paths", {}).get(path, {}).get(method.lower())
            if operation is None:
                continue
            if auth:
                operation["security"] = [{"bearer": []}] if auth == "required" else [{"bearer": []}, {}]
            statuses = dict(_ERROR_STATUSES)
            if auth:
                statuses.update(_AUTH_STATUSES)
            if method in ("GET", "DELETE") and "{" in path:
                statuses[404] = "Not found"
            responses = operation.setdefault("responses", {})
            for status, description in statuses.items():
                entry = responses.setdefault(str(status), {"description": description})
                entry["content"] = problem
            for status, entry in responses.items():  # the handlers' own error responses too
                if status.isdigit() and int(status) >= 400:
                    entry["content"] = problem
            responses["default"] = {"description": "An error, as problem details", "content": problem}
    app.openapi_schema = document
    return document


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
            return path[len(base) :] or "/"
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
