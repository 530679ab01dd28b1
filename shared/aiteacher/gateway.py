"""The local gateway: every function of stack.yml in one ASGI app, at `/function/<name>/...` (as
OpenFaaS serves it, prefix stripped) and at its REST alias (as the NGINX edge serves it), plus one
merged OpenAPI document at `/openapi.json` and a docs page at `/docs`."""

from __future__ import annotations

import json
from copy import deepcopy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from aiteacher.stack import FunctionSpec

DOCS_HTML = """<!doctype html><html><head><title>AI-Teacher API</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div><script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""


class Gateway:
    def __init__(self, specs: list[FunctionSpec]):
        from aiteacher.stack import load_app

        self.specs = specs
        self.apps: dict[str, ASGIApp] = {spec.name: load_app(spec) for spec in specs}
        routes = []
        for spec in specs:
            routes.append((f"/function/{spec.name}", spec.name))
            routes.append((spec.rest_path.rstrip("/"), spec.name))
        # Longest prefix first, so /documents/{id} never falls to a shorter alias.
        self.routes = sorted(routes, key=lambda route: len(route[0]), reverse=True)
        self._openapi: bytes | None = None
        from aiteacher.webapp import load_web_app

        self.web = load_web_app()

    def match(self, path: str) -> tuple[str, str, str] | None:
        for prefix, name in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, name, path[len(prefix):] or "/"
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
        headers: list[tuple[str, str]] = []
        ctype = "application/json"
        if self.web is not None and path in ("/", "/index.html"):
            self.web.refresh()
            body, status = self.web.index, 200
            headers = self.web.page_headers()
        elif self.web is not None and path.startswith("/static/"):
            status, body, headers = self.web.static(path, scope.get("query_string", b"").decode("latin-1"))
        elif path == "/openapi.json":
            body, status, ctype = self.openapi(), 200, "application/json"
        elif path == "/docs":
            body, status, ctype = DOCS_HTML.encode(), 200, "text/html; charset=utf-8"
        elif path in ("/", "/healthz"):
            listing = {"status": "ok", "functions": [
                {"name": s.name, "url": f"/function/{s.name}/", "rest": s.rest_path, "methods": list(s.methods)}
                for s in self.specs]}
            body, status, ctype = json.dumps(listing).encode(), 200, "application/json"
        else:
            problem = {"type": "https://aiteacher.dev/problems/not-found", "title": "Not found", "status": 404,
                       "detail": f"No function serves {path}", "code": "not_found"}
            body, status, ctype = json.dumps(problem).encode(), 404, "application/problem+json"
        if not headers:
            headers = [("content-type", ctype)]
        headers += [("content-length", str(len(body))), ("x-content-type-options", "nosniff"),
                    ("referrer-policy", "strict-origin-when-cross-origin")]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers]})
        await send({"type": "http.response.body", "body": body})

    def openapi(self) -> bytes:
        if self._openapi is None:
            self._openapi = json.dumps(merged_openapi(self.specs, self.apps)).encode()
        return self._openapi


def merged_openapi(specs: list[FunctionSpec], apps: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI 3.1 document: each function's paths under its REST alias, its schemas namespaced."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "AI-Teacher API", "version": "0.1.0",
                 "description": "Every function of stack.yml under its REST alias. The same operations are "
                                "served at /function/<name>/... by OpenFaaS."},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
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
    from aiteacher.stack import functions

    return Gateway(functions())
