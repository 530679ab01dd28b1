"""The Lambda packaging plan localstack/deploy-lambdas.sh reads (`aiteacher manifests --lambda-plan`)."""

from __future__ import annotations

from typing import Any

from aiteacher_devtools.manifests.common import (
    Stack,
    _app_env,
    profile,
)


def lambda_plan(stack: Stack) -> list[dict[str, Any]]:
    """What localstack/deploy-lambdas.sh packages: one zip per function (handler module `handler.handler`)."""
    plan = []
    for spec in stack.specs:
        p = profile(stack, spec)
        extras = ",".join(e for e in (spec.extras, "lambda") if e)
        plan.append(
            {
                "name": spec.name,
                "handler_dir": str(spec.handler_dir),
                "extras": extras,
                "timeout": min(p.timeout_seconds, 900),
                "memory": 2048 if p.memory_limit == "2Gi" else 512,
                "environment": {**_app_env(stack, spec), "API_GATEWAY_BASE_PATH": spec.rest_path},
                "secrets": list(spec.secrets),
            }
        )
    return plan
