"""The local gateway: every function of stack.yml in one ASGI app, at `/function/<name>/...` (as
OpenFaaS serves it, prefix stripped) and at its REST alias (as the NGINX edge serves it), plus one
merged OpenAPI document at `/openapi.json` and a docs page at `/docs`."""

from __future__ import annotations

import json
import uuid
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from aiteacher_devtools.stack import FunctionSpec

# Swagger UI from the flask-swagger-ui wheel's dist/ folder (read as files; flask is never imported), so the
# page works offline and under a CSP without inline scripts or other origins.
DOCS_HTML = """<!doctype html><html><head><title>AI-Teacher API</title><meta charset="utf-8">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script></body></html>"""
DOCS_INIT = b'SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", persistAuthorization: true});\n'
DOCS_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def swagger_ui_dist() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("flask_swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "dist"
    return folder if folder.is_dir() else None


class Gateway:
    def __init__(self, specs: list[FunctionSpec]):
        from aiteacher_devtools.stack import load_app

        self.specs = specs
        self.apps: dict[str, ASGIApp] = {spec.name: load_app(spec) for spec in specs}
        routes = []
        for spec in specs:
            routes.append((f"/function/{spec.name}", spec.name))
            routes.append((spec.rest_path.rstrip("/"), spec.name))
        # Longest prefix first, so /documents/{id} never falls to a shorter alias.
        self.routes = sorted(routes, key=lambda route: len(route[0]), reverse=True)
        self._openapi: bytes | None = None
        from aiteacher_devtools.webapp import load_web_app

        self.web = load_web_app()

    def match(self, path: str) -> tuple[str, str, str] | None:
        for prefix, name in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, name, path[len(prefix) :] or "/"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope.get("path", "/")
        matched = self.match(path)
        if matched is None:
            await self._own_route(path, scope, send)
            return
        prefix, name, rest = matched
        child = dict(scope)
        child["root_path"] = scope.get("root_path", "") + prefix
        child["path"] = rest
        child["raw_path"] = rest.encode()
        await self.apps[name](child, receive, send)

    async def _own_route(self, path: str, scope: Scope, send: Send) -> None:
        from aiteacher.web import _REQUEST_ID, DOCS_CSP, SECURITY_HEADERS

        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex

        extra: list[tuple[bytes, bytes]] = []
        page_csp: str | None = None
        ctype = "application/json"
        if self.web is not None and path in ("/", "/index.html"):
            self.web.refresh()
            body, status, ctype = self.web.index, 200, "text/html; charset=utf-8"
            page_csp = self.web.csp
            extra.append((b"cache-control", b"no-cache"))
        elif self.web is not None and path.startswith("/static/"):
            status, body, web_headers = self.web.static(path, scope.get("query_string", b"").decode("latin-1"))
            ctype = dict(web_headers).pop("content-type")
            extra += [(k.encode(), v.encode()) for k, v in web_headers if k != "content-type"]
        elif path == "/openapi.json":
            body, status, ctype = self.openapi(), 200, "application/json"
        elif path == "/docs":
            body, status, ctype = DOCS_HTML.encode(), 200, "text/html; charset=utf-8"
        elif path == "/docs/assets/init.js":
            body, status, ctype = DOCS_INIT, 200, "text/javascript; charset=utf-8"
        elif (
            path.startswith("/docs/assets/")
            and path.removeprefix("/docs/assets/") in DOCS_ASSETS
            and (dist := swagger_ui_dist()) is not None
        ):
            name = path.removeprefix("/docs/assets/")
            body, status, ctype = (dist / name).read_bytes(), 200, DOCS_ASSETS[name]
            extra.append((b"cache-control", b"public, max-age=86400"))
        elif path in ("/", "/healthz"):
            listing = {
                "status": "ok",
                "functions": [
                    {"name": s.name, "url": f"/function/{s.name}/", "rest": s.rest_path, "methods": list(s.methods)}
                    for s in self.specs
                ],
            }
            body, status, ctype = json.dumps(listing).encode(), 200, "application/json"
        else:
            problem = {
                "type": "https://aiteacher.dev/problems/not-found",
                "title": "Not found",
                "status": 404,
                "detail": f"No function serves {path}",
                "code": "not_found",
            }
            body, status, ctype = json.dumps(problem).encode(), 404, "application/problem+json"
        csp = page_csp.encode() if page_csp else (DOCS_CSP if path.startswith("/docs") else None)
        security = [
            (name, csp if csp and name == b"content-security-policy" else value) for name, value in SECURITY_HEADERS
        ]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    *security,
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def openapi(self) -> bytes:
        if self._openapi is None:
            self._openapi = json.dumps(merged_openapi(self.specs, self.apps)).encode()
        return self._openapi


def merged_openapi(specs: list[FunctionSpec], apps: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI 3.1 document: each function's paths under its REST alias, its schemas namespaced."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "AI-Teacher API",
            "version": "0.1.0",
            "description": "Every function of stack.yml under its REST alias. The same operations are "
            "served at /function/<name>/... by OpenFaaS.",
        },
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
    for spec in specs:
        document = deepcopy(apps[spec.name].openapi())
        schemas = document.get("components", {}).get("schemas", {})
        renamed = {name: f"{spec.name.replace('-', '_')}__{name}" for name in schemas}
        text = json.dumps(document)
        for old, new in renamed.items():
            text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
        document = json.loads(text)
        for old, new in renamed.items():
            merged["components"]["schemas"][new] = document["components"]["schemas"][old]
        for path, operations in document.get("paths", {}).items():
            full = spec.rest_path.rstrip("/") + ("" if path == "/" else path)
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation.setdefault("tags", [spec.name])
                    operation["operationId"] = f"{spec.name}__{operation.get('operationId', '')}"
            merged["paths"][full or "/"] = operations
    return merged


def build_gateway() -> Gateway:
    from aiteacher_devtools.stack import functions

    return Gateway(functions())
