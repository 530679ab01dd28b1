"""The reference web app (`web/`): its index page with an import map of content-hashed module URLs, a
strict CSP, and static files with long-lived caching for hashed URLs. Served by the local gateway
(`make dev`) and written out by `aiteacher web-build` for the NGINX edge."""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

STATIC_PREFIX = "/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


def default_web_dir() -> Path | None:
    """`web/` next to `devtools/` in a checkout (the editable install `make dev` uses)."""
    candidate = Path(__file__).resolve().parents[2] / "web"
    return candidate if (candidate / "index.html").is_file() else None


@dataclass
class WebApp:
    root: Path
    api_base: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    index: bytes = b""
    csp: str = ""

    signature: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        self.refresh()

    def _files(self) -> list[Path]:
        return sorted(p for p in [self.root / "index.html", *(self.root / "static").rglob("*")] if p.is_file())

    def refresh(self) -> None:
        """Rehash when a file changed (cheap stat calls), so an edited module is served at once in dev."""
        files = self._files()
        signature = tuple((p.as_posix(), p.stat().st_mtime_ns) for p in files)
        if signature == self.signature:
            return
        static = self.root / "static"
        self.versions = {
            p.relative_to(static).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in files
            if p.is_relative_to(static)
        }
        self.index, self.csp = self._render_index()
        self.signature = signature

    def url(self, rel: str) -> str:
        return f"{STATIC_PREFIX}{rel}?v={self.versions[rel]}"

    def _render_index(self) -> tuple[bytes, str]:
        imports = {f"{STATIC_PREFIX}{rel}": self.url(rel) for rel in self.versions if rel.endswith(".js")}
        import_map = json.dumps({"imports": imports}, indent=1, sort_keys=True)
        script_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
        html = (self.root / "index.html").read_text()
        html = html.replace(
            '<meta name="aiteacher-api-base" content="">',
            f'<meta name="aiteacher-api-base" content="{_attr(self.api_base)}">',
        )
        html = html.replace('href="/static/styles.css"', f'href="{self.url("styles.css")}"')
        html = html.replace(
            '<script type="module" src="/static/app.js"></script>',
            f'<script type="importmap">{import_map}</script>\n'
            f'  <script type="module" src="{self.url("app.js")}"></script>',
        )
        connect = "'self'"
        if self.api_base:
            parts = urlsplit(self.api_base)
            connect += f" {parts.scheme}://{parts.netloc}"
        csp = (
            "default-src 'self'; "
            f"script-src 'self' 'sha256-{script_hash}'; style-src 'self'; img-src 'self' blob: data:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        return html.encode(), csp

    def static(self, path: str, query: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        """(status, body, headers) for GET /static/<path>; nothing outside `static/` is ever read."""
        rel = path[len(STATIC_PREFIX) :]
        if rel not in self.versions:
            return 404, b"Not found", [("content-type", "text/plain; charset=utf-8")]
        file = self.root / "static" / rel
        suffix = file.suffix.lower()
        ctype = _TYPES.get(suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        version = self.versions[rel]
        cache = IMMUTABLE if f"v={version}" in query.split("&") else "no-cache"
        return 200, file.read_bytes(), [("content-type", ctype), ("cache-control", cache), ("etag", f'"{version}"')]

    def build(self, out: Path) -> None:
        """Write the app for a static web server: index.html plus static/ (hashed URLs cache forever)."""
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(self.root / "static", out / "static")
        (out / "index.html").write_bytes(self.index)
        (out / "csp.txt").write_text(self.csp + "\n")


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def load_web_app(api_base: str = "") -> WebApp | None:
    root = default_web_dir()
    return WebApp(root, api_base=api_base) if root else None
