"""The NGINX edge generated from stack.yml: every REST alias routed, `nginx -t` clean, and a real nginx in
front of the local gateway serving register + login through the aliases."""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiteacher_devtools import manifests
from aiteacher_devtools.stack import functions
from tests.helpers import PASSWORD, unique_email

REPO = Path(__file__).resolve().parents[2]
SPECS = functions()
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it with apt-get)")


def conf(name: str) -> str:
    return (REPO / "infra" / "nginx" / name).read_text()


def locations(text: str) -> dict[str, str]:
    """location -> its proxy_pass target."""
    found = {}
    for match in re.finditer(r"location (=?\s?[^\s{]+) \{(.*?)\}", text, re.S):
        target = re.search(r"proxy_pass (\S+);", match.group(2))
        if target:
            found[match.group(1).replace("= ", "=")] = target.group(1)
    return found


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_every_alias_reaches_its_function(spec) -> None:  # type: ignore[no-untyped-def]
    gateway = locations(conf("aiteacher.conf"))
    direct = locations(conf("compose.conf"))
    alias = spec.rest_path.rstrip("/")
    for routes, target in (
        (gateway, f"http://aiteacher_gateway/function/{spec.name}/"),
        (direct, f"http://fn_{spec.name.replace('-', '_')}/"),
    ):
        assert routes[f"={alias}"] == target  # exact: POST /auth/login
        assert routes[f"{alias}/"] == target  # prefix: GET /documents/{id}
        assert routes[f"=/function/{spec.name}"] == target
        assert routes[f"/function/{spec.name}/"] == target
    assert f"server {spec.name}:8080;" in conf("compose.conf")


def test_edge_headers_and_body_sizes() -> None:
    text = conf("aiteacher.conf")
    for header in (
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Real-IP $remote_addr",
        "X-Forwarded-Proto $scheme",
        "X-Request-ID $aiteacher_request_id",
        "Host $host",
    ):
        assert f"proxy_set_header {header};" in text
    assert "Access-Control" not in text  # CORS is the functions' job (CORS_ORIGINS)
    stack = manifests.load(REPO)
    for spec in SPECS:
        size = manifests.profile(stack, spec).max_body
        block = text.split(f"location = {spec.rest_path.rstrip('/')} {{", 1)[1].split("}", 1)[0]
        if size == manifests.DEFAULT_BODY:
            assert "client_max_body_size" not in block
        else:
            assert f"client_max_body_size {size};" in block
            assert int(size.rstrip("m")) >= 50  # an upload function takes a 50 MB PDF


# --- nginx itself ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main_conf(folder: Path, include: Path, *, daemon: bool) -> Path:
    """A minimal nginx.conf around the generated conf.d include, everything under `folder`."""
    folder.chmod(0o755)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub).chmod(0o777)  # nginx workers drop root for nobody
    path = folder / "nginx.conf"
    path.write_text(f"""
worker_processes 1;
daemon {"on" if daemon else "off"};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {include};
}}
""")
    return path


def nginx_test(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    include = folder / "edge.conf"
    include.write_text(text)
    path = main_conf(folder, include, daemon=False)
    return subprocess.run(
        [NGINX, "-t", "-q", "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_nginx
def test_nginx_accepts_the_gateway_edge(tmp_path: Path) -> None:
    # Upstream host names resolve when nginx loads its config: point them at loopback for the test.
    text = conf("aiteacher.conf").replace(f"server {manifests.GATEWAY_ADDRESS};", "server 127.0.0.1:9;")
    assert text != conf("aiteacher.conf")
    result = nginx_test(tmp_path, text)
    assert result.returncode == 0, result.stderr


@needs_nginx
def test_nginx_accepts_the_compose_edge(tmp_path: Path) -> None:
    text = re.sub(r"server [a-z0-9-]+:8080;", "server 127.0.0.1:9;", conf("compose.conf"))
    result = nginx_test(tmp_path, text)
    assert result.returncode == 0, result.stderr


@needs_nginx
def test_nginx_rejects_a_broken_config(tmp_path: Path) -> None:
    assert nginx_test(tmp_path, conf("aiteacher.conf").replace("proxy_pass", "proxy_passs")).returncode != 0


@pytest.fixture
def local_gateway(gateway) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The local gateway (every function at /function/<name>/) under uvicorn, in a thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "local gateway did not start"
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def edge(tmp_path: Path, local_gateway: int) -> Iterator[str]:
    """nginx with the generated edge pointing at the local gateway; stopped by its own PID."""
    stack = manifests.load(REPO)
    port = free_port()
    include = tmp_path / "edge.conf"
    import shutil
    import tempfile

    from aiteacher_devtools.webapp import load_web_app

    web = load_web_app()
    assert web is not None
    # nginx's workers run as nobody: the files go where nobody can read them (pytest's tmp_path is 0700).
    web_root = Path(tempfile.mkdtemp(prefix="aiteacher-web-"))
    web_root.chmod(0o755)
    web.build(web_root / "web")  # what `aiteacher web-build /srv/aiteacher-web` writes
    text = manifests.nginx_conf(stack, gateway=f"127.0.0.1:{local_gateway}", listen=f"127.0.0.1:{port}")
    include.write_text(text.replace(manifests.WEB_ROOT, str(web_root / "web")))
    path = main_conf(tmp_path, include, daemon=False)
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"nginx exited: {process.stdout.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(web_root, ignore_errors=True)


@needs_nginx
def test_register_and_login_through_the_edge(edge: str) -> None:
    # Each run comes from its own loopback address, so per-IP limits never see another test's traffic.
    local = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    transport = httpx.HTTPTransport(local_address=local)
    with httpx.Client(base_url=edge, transport=transport, timeout=30) as client:
        email = unique_email("edge")
        registered = client.post("/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Edge"})
        assert registered.status_code == 201, registered.text
        assert registered.json()["email"] == email
        login = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD}, headers={"X-Request-ID": "edge-test-request-1"}
        )
        assert login.status_code == 200, login.text
        assert login.headers["x-request-id"] == "edge-test-request-1"  # passed through to the function
        tokens = login.json()
        assert tokens["token_type"] == "bearer" and tokens["access_token"]
        me = client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == email
        generated_id = client.get("/faculties").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated_id)  # nginx's $request_id when the client sent none
        assert client.get("/function/faculties/").status_code == 200
        assert client.get("/function/faculties").status_code == 200
        duplicate = client.post("/auth/register/", json={"email": email, "password": PASSWORD, "full_name": "Edge"})
        assert duplicate.status_code == 409
        missing = client.get("/no-such-route")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get("/healthz").text == "ok\n"


@needs_nginx
def test_the_edge_serves_the_web_app_with_its_csp_and_cached_hashed_modules(edge: str) -> None:
    import re

    index = httpx.get(edge + "/")
    assert index.status_code == 200 and "<main" in index.text
    assert index.headers["cache-control"] == "no-cache"
    csp = index.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp and "frame-ancestors 'none'" in csp
    assert index.headers["strict-transport-security"].startswith("max-age=")
    module = re.search(r'src="(/static/app\.js\?v=[0-9a-f]+)"', index.text)
    assert module is not None
    asset = httpx.get(edge + module.group(1))
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert asset.headers["content-type"].split(";")[0] in ("application/javascript", "text/javascript")
    # The page's CSP names exactly the import map the page carries (the generator and web-build agree).
    import_map = re.search(r'<script type="importmap">(.*?)</script>', index.text, re.S).group(1)
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    assert httpx.get(edge + "/faculties").status_code == 200  # the API still answers beside it
