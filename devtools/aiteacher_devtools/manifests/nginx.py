"""The NGINX edge: each REST alias -> /function/<name> on the OpenFaaS gateway (or, for docker-compose,
straight to each function's container), and the web app's static files."""

from __future__ import annotations

from aiteacher_devtools.manifests.common import (
    DEFAULT_BODY,
    EDGE_PORT,
    GATEWAY_ADDRESS,
    HEADER,
    STREAMING_ANNOTATION,
    WATCHDOG_PORT,
    WRITE_MARGIN_SECONDS,
    Stack,
    profile,
)


def _upstream_name(name: str) -> str:
    return "fn_" + name.replace("-", "_")


WEB_ROOT = "/srv/aiteacher-web"
HSTS = 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;'


def _web_app_locations() -> list[str]:
    """The web app as `aiteacher web-build WEB_ROOT` writes it: index.html never cached and sent with the
    page's CSP (which names the import map's hash, so this file is regenerated when web/ changes), the
    content-hashed modules cached for a year. A location's add_header replaces the server's: HSTS again."""
    from aiteacher_devtools.webapp import load_web_app

    web = load_web_app()
    if web is None:
        return []
    common = [
        f"        root {WEB_ROOT};",
        "        add_header X-Content-Type-Options nosniff always;",
        "        add_header Referrer-Policy no-referrer always;",
        f"        {HSTS}",
    ]
    return [
        f"    # The web app: `aiteacher web-build {WEB_ROOT}` (docs/operator-guide.md).",
        "    location = / {",
        *common,
        "        try_files /index.html =404;",
        '        add_header Cache-Control "no-cache" always;',
        f'        add_header Content-Security-Policy "{web.csp}" always;',
        "    }",
        "    location /static/ {",
        *common,
        # Module scripts need a JavaScript type: set here, whatever mime.types the main config includes.
        "        types { text/javascript js mjs; text/css css; image/png png; image/svg+xml svg; }",
        "        default_type application/octet-stream;",
        '        add_header Cache-Control "public, max-age=31536000, immutable" always;',
        "        add_header Content-Security-Policy \"frame-ancestors 'none'\" always;",
        "    }",
        "",
    ]


def nginx_conf(
    stack: Stack,
    *,
    gateway: str | None = GATEWAY_ADDRESS,
    listen: str = str(EDGE_PORT),
    direct_port: int = WATCHDOG_PORT,
) -> str:
    """The edge as an `http {}`-level include (conf.d). With `gateway`, every route goes to the OpenFaaS
    gateway's /function/<name>/; with gateway=None, straight to a host named like the function (compose).
    Exact and prefix matches per alias: `/documents` and `/documents/{id}` both reach `document`."""
    lines = [
        f"# {HEADER}",
        "#",
        "# REST alias -> function. CORS, auth and rate limits are the functions' job; the edge routes,",
        "# sizes bodies and passes the client address and a request id on.",
        "",
    ]
    lines += [
        "map $http_x_request_id $aiteacher_request_id {",
        "    default $http_x_request_id;",
        '    ""      $request_id;',
        "}",
        "",
    ]
    if gateway:
        lines += ["upstream aiteacher_gateway {", f"    server {gateway};", "    keepalive 32;", "}", ""]
    else:
        for spec in stack.specs:
            lines += [
                f"upstream {_upstream_name(spec.name)} {{",
                f"    server {spec.name}:{direct_port};",
                "    keepalive 8;",
                "}",
            ]
        lines.append("")
    lines += [
        "server {",
        f"    listen {listen};",
        "    server_name _;",
        "    server_tokens off;",
        f"    client_max_body_size {DEFAULT_BODY};",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $host;",
        "    proxy_set_header X-Real-IP $remote_addr;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_set_header X-Forwarded-Host $host;",
        "    proxy_set_header X-Request-ID $aiteacher_request_id;",
        "    proxy_connect_timeout 5s;",
        "    # Browsers keep to HTTPS for a year (ignored on plain HTTP; TLS terminates at or before the edge).",
        '    add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;',
        "",
        "    location = /healthz {",
        "        access_log off;",
        "        default_type text/plain;",
        '        return 200 "ok\\n";',
        "    }",
        "",
    ]
    for spec in stack.specs:
        p = profile(stack, spec)
        target = (
            f"http://aiteacher_gateway/function/{spec.name}/" if gateway else f"http://{_upstream_name(spec.name)}/"
        )
        body = [f"        client_max_body_size {p.max_body};"] if p.max_body != DEFAULT_BODY else []
        if spec.annotations.get(STREAMING_ANNOTATION) == "true":
            body += ["        proxy_buffering off;", "        proxy_cache off;"]
        # The edge waits longer than the watchdog's write_timeout: the 504 comes from the function.
        edge_timeout = p.timeout_seconds + 2 * WRITE_MARGIN_SECONDS
        timeouts = [f"        proxy_read_timeout {edge_timeout}s;", f"        proxy_send_timeout {edge_timeout}s;"]
        alias = spec.rest_path.rstrip("/") or "/"
        lines.append(f"    # {spec.name}: {', '.join(spec.methods)} {alias}")
        prefixes = [alias] if alias == "/" else [f"= {alias}", f"{alias}/"]
        for prefix in [*prefixes, f"= /function/{spec.name}", f"/function/{spec.name}/"]:
            lines += [f"    location {prefix} {{", *body, *timeouts, f"        proxy_pass {target};", "    }"]
        lines.append("")
    lines += _web_app_locations()
    lines += [
        "    location / {",
        "        default_type application/problem+json;",
        '        return 404 \'{"type":"https://aiteacher.dev/problems/not-found","title":"Not found",'
        '"status":404,"detail":"No function serves this path","code":"not_found"}\';',
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"
