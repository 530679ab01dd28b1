"""Knative Services: one per function (scale to zero, probes, secrets as files)."""

from __future__ import annotations

from typing import Any

from aiteacher_devtools.manifests.common import (
    LIVE_PATH,
    METRICS_PATH,
    OPTIONAL_SECRETS,
    READY_PATH,
    SECRETS_MOUNT,
    WATCHDOG_PORT,
    WRITE_MARGIN_SECONDS,
    Stack,
    _app_env,
    _env_list,
    _scrape_annotations,
    _secrets_volume,
    _security_context,
    profile,
)
from aiteacher_devtools.stack import FunctionSpec


def knative_service(stack: Stack, spec: FunctionSpec) -> dict[str, Any]:
    p = profile(stack, spec)
    env = _app_env(stack, spec)
    # The image runs of-watchdog in front of uvicorn: exec (and read) at the function's timeout, write a
    # little later so the watchdog's 504 is still written, and the revision's timeout after both.
    env.update(
        read_timeout=f"{p.timeout_seconds}s",
        exec_timeout=f"{p.timeout_seconds}s",
        write_timeout=f"{p.timeout_seconds + WRITE_MARGIN_SECONDS}s",
    )
    labels = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/part-of": "aiteacher"}
    container: dict[str, Any] = {
        "name": "function",
        "image": stack.image(spec),
        "ports": [{"name": "http1", "containerPort": WATCHDOG_PORT}],
        "env": _env_list(env),
        "readinessProbe": {
            "httpGet": {"path": READY_PATH},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": LIVE_PATH},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": p.cpu_request, "memory": p.memory_request},
            "limits": {"memory": p.memory_limit},
        },
        "securityContext": _security_context(),
    }
    template_spec: dict[str, Any] = {
        "containerConcurrency": p.container_concurrency,
        "timeoutSeconds": p.timeout_seconds + WRITE_MARGIN_SECONDS,
        "containers": [container],
    }
    if spec.secrets:
        container["volumeMounts"] = [{"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}]
        template_spec["volumes"] = [
            _secrets_volume(
                "secrets",
                [s for s in spec.secrets if s not in OPTIONAL_SECRETS],
                [s for s in spec.secrets if s in OPTIONAL_SECRETS],
            )
        ]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": spec.name,
            "namespace": stack.namespace(),
            "labels": labels,
            "annotations": {key: value for key, value in spec.annotations.items() if key.startswith("aiteacher.dev/")},
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                        "autoscaling.knative.dev/metric": "concurrency",
                        "autoscaling.knative.dev/target": str(p.target),
                        "autoscaling.knative.dev/min-scale": str(p.min_scale),
                        "autoscaling.knative.dev/max-scale": str(p.max_scale),
                        "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "5m",
                        **_scrape_annotations(WATCHDOG_PORT, METRICS_PATH),
                    },
                },
                "spec": template_spec,
            }
        },
    }
