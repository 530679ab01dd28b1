"""docker-compose.yml: the whole system on one machine, every function built from the template."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiteacher_devtools.manifests.common import (
    COMPOSE_SECRETS,
    COMPOSE_SERVICE_ENV,
    EDGE_PORT,
    HEADER,
    IMAGES,
    OBJECT_CREATED_FUNCTION,
    PGBOUNCER_PORT,
    TEMPLATE_DOCKERFILE,
    WATCHDOG_ENV,
    WATCHDOG_PORT,
    WORKER_EXTRAS,
    Stack,
    _all_secrets,
    _dump,
    _shared_env,
)
from aiteacher_devtools.manifests.nginx import WEB_ROOT


def _compose_build(extras: str, function: str = "") -> dict[str, Any]:
    args = {"EXTRAS": extras}
    if function:
        args["FUNCTION"] = function
    return {"context": ".", "dockerfile": TEMPLATE_DOCKERFILE, "args": args}


def _compose_env(env: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    merged = {k: v for k, v in env.items() if k not in WATCHDOG_ENV}
    merged.update(COMPOSE_SERVICE_ENV)
    for secret in secrets:
        variable = secret.replace("-", "_").upper()  # the setting's environment variable
        merged[variable] = COMPOSE_SECRETS.get(secret, f"${{{variable}:-}}")
    return dict(sorted(merged.items()))


def compose(stack: Stack) -> str:
    specs = stack.specs
    shared_env = _shared_env(stack, "worker")
    app_depends = {
        "migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
        "pgbouncer": {"condition": "service_started"},
    }
    services: dict[str, Any] = {
        "postgres": {
            "image": IMAGES["postgres"],
            "environment": {"POSTGRES_USER": "aiteacher", "POSTGRES_PASSWORD": "aiteacher", "POSTGRES_DB": "aiteacher"},
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
            "healthcheck": {
                "test": ["CMD-SHELL", "pg_isready -U aiteacher -d aiteacher"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
        },
        "pgbouncer": {
            "build": {"context": "infra/pgbouncer"},
            "image": stack.sibling_image("pgbouncer"),
            "volumes": [
                "./infra/pgbouncer/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro",
                "./infra/pgbouncer/userlist.txt:/etc/pgbouncer/userlist.txt:ro",
            ],
            "ports": [f"127.0.0.1:{PGBOUNCER_PORT}:{PGBOUNCER_PORT}"],
            "depends_on": {"postgres": {"condition": "service_healthy"}},
        },
        "redis": {
            "image": IMAGES["redis"],
            # AOF: queued jobs and deny-list keys survive a restart (docs/reliability.md).
            "command": ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec"],
            "volumes": ["redis-data:/data"],
            "healthcheck": {"test": ["CMD", "redis-cli", "ping"], "interval": "5s", "timeout": "3s", "retries": 20},
        },
        "qdrant": {"image": IMAGES["qdrant"], "volumes": ["qdrant-data:/qdrant/storage"]},
        "minio": {
            "image": IMAGES["minio"],
            "command": ["server", "/data", "--console-address", ":9001"],
            "environment": {
                "MINIO_ROOT_USER": COMPOSE_SECRETS["s3-access-key-id"],
                "MINIO_ROOT_PASSWORD": COMPOSE_SECRETS["s3-secret-access-key"],
                **_minio_webhook_env(stack),
            },
            "volumes": ["minio-data:/data"],
            "ports": ["127.0.0.1:9000:9000", "127.0.0.1:9001:9001"],
            "healthcheck": {
                "test": [
                    "CMD-SHELL",
                    "curl -fsS http://127.0.0.1:9000/minio/health/ready >/dev/null || "
                    "wget -q -O /dev/null http://127.0.0.1:9000/minio/health/ready",
                ],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
        },
        "minio-setup": {
            "image": IMAGES["mc"],
            "depends_on": {"minio": {"condition": "service_healthy"}},
            "environment": {
                "MINIO_ROOT_USER": COMPOSE_SECRETS["s3-access-key-id"],
                "MINIO_ROOT_PASSWORD": COMPOSE_SECRETS["s3-secret-access-key"],
                "S3_BUCKET": shared_env.get("S3_BUCKET", "curriculum"),
            },
            "entrypoint": ["/bin/sh", "-ec", _minio_setup_script(stack)],
            "restart": "no",
        },
        "migrate": {
            "build": _compose_build(WORKER_EXTRAS),
            "image": stack.sibling_image("worker"),
            "command": ["aiteacher", "migrate"],
            "environment": {
                **_compose_env({**shared_env, "FUNCTION_NAME": "migrate"}, ["database-url"]),
                "SEED_DEMO": "${SEED_DEMO:-true}",
                "ADMIN_EMAIL": "${ADMIN_EMAIL:-}",
                "ADMIN_PASSWORD": "${ADMIN_PASSWORD:-}",
            },
            "depends_on": {"pgbouncer": {"condition": "service_started"}},
            "healthcheck": {"disable": True},  # the image's check is the watchdog's; no watchdog here
            "restart": "no",
        },
        "worker": {
            "build": _compose_build(WORKER_EXTRAS),
            "image": stack.sibling_image("worker"),
            "command": ["aiteacher", "worker"],
            "environment": _compose_env(shared_env, _all_secrets(stack)),
            "healthcheck": {"disable": True},
            "depends_on": {
                **app_depends,
                "qdrant": {"condition": "service_started"},
                "minio-setup": {"condition": "service_completed_successfully"},
            },
        },
    }
    for spec in specs:
        services[spec.name] = {
            "build": _compose_build(spec.extras, spec.name),
            "image": stack.image(spec),
            "environment": _compose_env(stack.environment(spec), spec.secrets),
            "depends_on": app_depends,
        }
    services["edge"] = {
        "image": IMAGES["nginx"],
        # The web app: `.venv/bin/aiteacher web-build build/web` before `docker compose up`.
        "volumes": ["./infra/nginx/compose.conf:/etc/nginx/conf.d/default.conf:ro", f"./build/web:{WEB_ROOT}:ro"],
        "ports": [f"127.0.0.1:{EDGE_PORT}:{EDGE_PORT}"],
        "depends_on": {spec.name: {"condition": "service_healthy"} for spec in specs},
    }
    document = {
        "services": services,
        "volumes": {"postgres-data": {}, "qdrant-data": {}, "minio-data": {}, "redis-data": {}},
    }
    header = (
        f"# {HEADER}\n# Local use only: the defaults below are development credentials "
        "(docs/docker-compose.md).\n#   COMPOSE_PROJECT_NAME=aiteacher docker compose up --build   then   curl http://127.0.0.1:8080/faculties\n"
    )
    return header + _dump(document)


MINIO_WEBHOOK_ID = "AITEACHER"
PDF_SUFFIXES = (".pdf", ".PDF")  # MinIO's suffix filter is case-sensitive


def _minio_webhook_env(stack: Stack) -> dict[str, str]:
    """The bucket webhook as MinIO's own environment: MinIO loads webhook targets only when it starts,
    and with a queue_dir a target that is not up yet (object-created starts after MinIO) is queued for,
    not dialled and failed at configuration time (`mc admin config set` did that, so minio-setup exited 1)."""
    if OBJECT_CREATED_FUNCTION not in {spec.name for spec in stack.specs}:
        return {}
    key = MINIO_WEBHOOK_ID
    return {
        f"MINIO_NOTIFY_WEBHOOK_ENABLE_{key}": "on",
        f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{key}": f"http://{OBJECT_CREATED_FUNCTION}:{WATCHDOG_PORT}/",
        f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{key}": COMPOSE_SECRETS["events-token"],
        f"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_{key}": "/data/.minio-events",
        f"MINIO_NOTIFY_WEBHOOK_QUEUE_LIMIT_{key}": "10000",
    }


def _minio_setup_script(stack: Stack) -> str:
    names = {spec.name for spec in stack.specs}
    lines = [
        'mc alias set local http://minio:9000 "$$MINIO_ROOT_USER" "$$MINIO_ROOT_PASSWORD"',
        'mc mb --ignore-existing "local/$$S3_BUCKET"',
    ]
    if OBJECT_CREATED_FUNCTION in names:
        lines += [
            f'mc event add "local/$$S3_BUCKET" arn:minio:sqs::{MINIO_WEBHOOK_ID}:webhook --event put '
            f"--suffix {suffix} --ignore-existing"
            for suffix in PDF_SUFFIXES
        ]
    return "\n".join(lines) + "\n"
