"""Deployment files generated from stack.yml (and env/common.yml): `aiteacher manifests [--check]`.

stack.yml is the one list of functions; everything below repeats it, so nothing here is written by hand:

    infra/knative/<fn>.yaml       a Knative Service per function (scale to zero, probes, secrets as files)
    infra/nginx/aiteacher.conf    the NGINX edge: each REST alias -> /function/<name> on the OpenFaaS gateway
    infra/nginx/compose.conf      the same edge for docker-compose, straight to each function's container
    infra/k8s/worker.yaml         RQ worker Deployment + KEDA ScaledObject (one redis trigger per queue)
    infra/k8s/migrate-job.yaml    the one-off `aiteacher migrate` Job (migrations never run at function start)
    infra/k8s/pgbouncer.yaml      PgBouncer Deployment + Service, config from infra/pgbouncer/pgbouncer.ini
    stack.pro.yml                 stack.yml plus the OpenFaaS Pro scale-to-zero labels (Community Edition
                                  rejects them, so they never go into stack.yml itself)
    docker-compose.yml            the whole system on one machine, every function built from the template
    shared/aiteacher/security/data/committed-secrets.txt
                                  digests of every secret-looking value committed here (refused outside dev)

One module per target: knative, nginx, k8s (worker, migration Job, PgBouncer), openfaas (stack.pro.yml),
compose, aws_lambda (the LocalStack plan) and secrets; common reads stack.yml and sizes each function.

`${VAR:-default}` in stack.yml is expanded to its default, so the committed files are reproducible and
`--check` can compare them; `--use-env` expands from the environment instead (with `--out` elsewhere).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from aiteacher_devtools.manifests import secrets
from aiteacher_devtools.manifests.aws_lambda import lambda_plan
from aiteacher_devtools.manifests.common import (
    DEFAULT_BODY,
    EDGE_PORT,
    GATEWAY_ADDRESS,
    HEADER,
    OBJECT_CREATED_FUNCTION,
    OPTIONAL_SECRETS,
    PRO_LABELS,
    STREAMING_ANNOTATION,
    TEMPLATE_DOCKERFILE,
    TEMPLATE_NAME,
    WATCHDOG_ENV,
    WORKER_EXTRAS,
    Stack,
    _dump,
    _dump_all,
    declared_extras,
    duration_seconds,
    expand,
    load,
    profile,
    resolve_extras,
)
from aiteacher_devtools.manifests.compose import MINIO_WEBHOOK_ID, compose
from aiteacher_devtools.manifests.k8s import migrate_job, pgbouncer_manifests, worker_manifests
from aiteacher_devtools.manifests.knative import knative_service
from aiteacher_devtools.manifests.nginx import WEB_ROOT, nginx_conf
from aiteacher_devtools.manifests.openfaas import pro_stack

# What tests, .ci/ship_check.py and localstack/ use as `manifests.<name>`.
__all__ = [
    "DEFAULT_BODY",
    "EDGE_PORT",
    "GATEWAY_ADDRESS",
    "MINIO_WEBHOOK_ID",
    "OBJECT_CREATED_FUNCTION",
    "OPTIONAL_SECRETS",
    "PRO_LABELS",
    "STREAMING_ANNOTATION",
    "TEMPLATE_DOCKERFILE",
    "TEMPLATE_NAME",
    "WATCHDOG_ENV",
    "WEB_ROOT",
    "WORKER_EXTRAS",
    "Stack",
    "add_arguments",
    "compose",
    "declared_extras",
    "differences",
    "duration_seconds",
    "expand",
    "generate",
    "knative_service",
    "lambda_plan",
    "load",
    "migrate_job",
    "nginx_conf",
    "pgbouncer_manifests",
    "pro_stack",
    "profile",
    "resolve_extras",
    "run",
    "worker_manifests",
    "write",
]


def generate(stack: Stack) -> dict[str, str]:
    """Relative path -> content of every generated file."""
    files = {}
    for spec in stack.specs:
        files[f"infra/knative/{spec.name}.yaml"] = f"# {HEADER}\n" + _dump(knative_service(stack, spec))
    files["infra/nginx/aiteacher.conf"] = nginx_conf(stack)
    files["infra/nginx/compose.conf"] = nginx_conf(stack, gateway=None)
    files["infra/k8s/worker.yaml"] = f"# {HEADER}\n" + _dump_all(worker_manifests(stack))
    files["infra/k8s/migrate-job.yaml"] = f"# {HEADER}\n" + _dump(migrate_job(stack))
    files["infra/k8s/pgbouncer.yaml"] = f"# {HEADER}\n" + _dump_all(pgbouncer_manifests(stack))
    files["stack.pro.yml"] = pro_stack(stack)
    files["docker-compose.yml"] = compose(stack)
    files[secrets.RELATIVE_DATA_FILE] = secrets.render(secrets.scanned_texts(stack.root, files).values())
    return files


GENERATED_DIRS = ("infra/knative",)  # folders whose every file is generated (stale ones are reported)


def differences(root: Path, files: Mapping[str, str]) -> list[str]:
    """Human-readable differences between `files` and what is on disk under `root`."""
    problems = []
    for relative, content in files.items():
        path = root / relative
        current = path.read_text() if path.is_file() else None
        if current is None:
            problems.append(f"missing: {relative}")
        elif current != content:
            diff = difflib.unified_diff(
                current.splitlines(),
                content.splitlines(),
                f"{relative} (committed)",
                f"{relative} (generated)",
                lineterm="",
                n=1,
            )
            problems.append(f"differs: {relative}\n" + "\n".join(list(diff)[:40]))
    for folder in GENERATED_DIRS:
        for path in sorted((root / folder).glob("*")):
            relative = path.relative_to(root).as_posix()
            if relative not in files:
                problems.append(f"stale (no such function in stack.yml): {relative}")
    return problems


def write(root: Path, files: Mapping[str, str]) -> list[str]:
    written = []
    for folder in GENERATED_DIRS:
        for path in (root / folder).glob("*"):
            if path.relative_to(root).as_posix() not in files:
                path.unlink()
                written.append(f"removed {path.relative_to(root).as_posix()}")
    for relative, content in files.items():
        path = root / relative
        if path.is_file() and path.read_text() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(f"wrote {relative}")
    return written


def run(
    check: bool = False, out: str | None = None, use_env: bool = False, plan: bool = False, namespace: str | None = None
) -> int:
    stack = load(environ=os.environ if use_env else None, namespace=namespace)
    if plan:
        print(json.dumps(lambda_plan(stack)))
        return 0
    files = generate(stack)
    target = Path(out) if out else stack.root
    if check:
        problems = differences(target, files)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{len(problems)} generated file(s) out of date: run `aiteacher manifests`", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files match stack.yml")
        return 0
    for line in write(target, files) or ["all generated files already up to date"]:
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aiteacher manifests", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(check=args.check, out=args.out, use_env=args.use_env, plan=args.lambda_plan, namespace=args.namespace)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs from generation")
    parser.add_argument("--out", metavar="DIR", help="write under DIR instead of the repository")
    parser.add_argument(
        "--use-env",
        action="store_true",
        help="expand ${VAR:-default} from the environment (REGISTRY, TAG, ...), not the defaults",
    )
    parser.add_argument(
        "--namespace",
        help="Kubernetes namespace of the generated objects (default: the one "
        "env/common.yml addresses its services in); use with --out",
    )
    parser.add_argument("--lambda-plan", action="store_true", help="print the Lambda packaging plan as JSON")


if __name__ == "__main__":
    raise SystemExit(main())
