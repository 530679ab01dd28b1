"""Kubernetes objects: the RQ worker Deployment + KEDA ScaledObject, the migration Job, PgBouncer."""

from __future__ import annotations

from typing import Any

from aiteacher_devtools.manifests.common import (
    OPTIONAL_SECRETS,
    PGBOUNCER_PORT,
    SECRETS_MOUNT,
    WORKER_METRICS_PORT,
    Stack,
    _all_secrets,
    _env_list,
    _job_timeout_seconds,
    _redis_target,
    _scrape_annotations,
    _secrets_volume,
    _security_context,
    _shared_env,
)


def worker_manifests(stack: Stack) -> list[dict[str, Any]]:
    from aiteacher.queue import QUEUES

    namespace, name = stack.namespace(), "aiteacher-worker"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "aiteacher"}
    grace = _job_timeout_seconds() + 60  # SIGTERM: RQ finishes the running job (warm shutdown) first
    address, database = _redis_target(stack)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 0,  # KEDA owns the replica count
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": _scrape_annotations(WORKER_METRICS_PORT, "/metrics")},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                    "containers": [
                        {
                            "name": "worker",
                            "image": stack.sibling_image("worker"),
                            "command": ["aiteacher", "worker"],
                            "livenessProbe": {
                                "exec": {"command": ["aiteacher", "worker-health"]},
                                "initialDelaySeconds": 30,
                                "periodSeconds": 30,
                                "failureThreshold": 3,
                            },
                            "ports": [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}],
                            "env": _env_list(_shared_env(stack, "worker")),
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                            "securityContext": _security_context(),
                            "volumeMounts": [{"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}],
                        }
                    ],
                    "volumes": [
                        _secrets_volume(
                            "secrets",
                            [s for s in _all_secrets(stack) if s not in OPTIONAL_SECRETS],
                            [s for s in _all_secrets(stack) if s in OPTIONAL_SECRETS],
                        )
                    ],
                },
            },
        },
    }
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 0,
            "maxReplicaCount": 5,
            "pollingInterval": 10,
            # A queue is empty while its last job still runs: wait at least a job timeout before scaling in.
            "cooldownPeriod": grace,
            "triggers": [
                {
                    "type": "redis",
                    "name": f"queue-{queue}",
                    "metadata": {
                        "address": address,
                        "databaseIndex": database,
                        "listName": f"rq:queue:{queue}",
                        "listLength": "5",
                        "activationListLength": "0",
                    },
                }
                for queue in QUEUES
            ],
        },
    }
    return [deployment, scaled]


def migrate_job(stack: Stack) -> dict[str, Any]:
    namespace = stack.namespace()
    labels = {"app.kubernetes.io/name": "aiteacher-migrate", "app.kubernetes.io/part-of": "aiteacher"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "aiteacher-migrate", "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                    "containers": [
                        {
                            "name": "migrate",
                            "image": stack.sibling_image("worker"),
                            "command": ["aiteacher", "migrate"],
                            "env": _env_list(_shared_env(stack, "migrate")),
                            "securityContext": _security_context(),
                            "volumeMounts": [{"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}],
                        }
                    ],
                    "volumes": [
                        _secrets_volume("secrets", ["database-url"], optional=["admin-email", "admin-password"])
                    ],
                },
            },
        },
    }


def pgbouncer_manifests(stack: Stack) -> list[dict[str, Any]]:
    namespace = stack.namespace()
    labels = {"app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/part-of": "aiteacher"}
    ini = (stack.root / "infra" / "pgbouncer" / "pgbouncer.ini").read_text()
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "pgbouncer", "namespace": namespace, "labels": labels},
            "data": {"pgbouncer.ini": ini},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "pgbouncer", "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "pgbouncer"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                        "containers": [
                            {
                                "name": "pgbouncer",
                                "image": stack.sibling_image("pgbouncer"),
                                "ports": [{"name": "pgbouncer", "containerPort": PGBOUNCER_PORT}],
                                "readinessProbe": {"tcpSocket": {"port": PGBOUNCER_PORT}, "periodSeconds": 5},
                                "livenessProbe": {"tcpSocket": {"port": PGBOUNCER_PORT}, "periodSeconds": 20},
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "64Mi"},
                                    "limits": {"memory": "256Mi"},
                                },
                                "securityContext": _security_context(),
                                "volumeMounts": [
                                    {
                                        "name": "config",
                                        "mountPath": "/etc/pgbouncer/pgbouncer.ini",
                                        "subPath": "pgbouncer.ini",
                                        "readOnly": True,
                                    },
                                    {
                                        "name": "userlist",
                                        "mountPath": "/etc/pgbouncer/userlist.txt",
                                        "subPath": "userlist.txt",
                                        "readOnly": True,
                                    },
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "pgbouncer"}},
                            {"name": "userlist", "secret": {"secretName": "pgbouncer-userlist"}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "pgbouncer", "namespace": namespace, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": "pgbouncer"},
                "ports": [{"name": "pgbouncer", "port": PGBOUNCER_PORT, "targetPort": PGBOUNCER_PORT}],
            },
        },
    ]
