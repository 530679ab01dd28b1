"""The files `aiteacher manifests` generates from stack.yml: in sync with it, valid against the Knative
Service schema, and carrying what each function needs (scaling, probes, secrets, environment)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from aiteacher_devtools import manifests
from aiteacher_devtools.stack import functions

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "knative-service-v1.json").read_text())
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SPECS = functions()


def by_name(spec):  # type: ignore[no-untyped-def]
    return spec.name


@pytest.fixture(scope="module")
def stack() -> manifests.Stack:
    return manifests.load(REPO)


@pytest.fixture(scope="module")
def generated(stack: manifests.Stack) -> dict[str, str]:
    return manifests.generate(stack)


def knative(name: str) -> dict:
    return yaml.safe_load((REPO / "infra" / "knative" / f"{name}.yaml").read_text())


# --- in sync ---------------------------------------------------------------------------------------


def test_committed_files_equal_a_fresh_generation(generated: dict[str, str]) -> None:
    problems = manifests.differences(REPO, generated)
    assert not problems, "generated files are out of date, run `aiteacher manifests`:\n" + "\n".join(problems)


def test_every_function_has_a_knative_service_and_nothing_else(generated: dict[str, str]) -> None:
    expected = {f"infra/knative/{spec.name}.yaml" for spec in SPECS}
    assert {path for path in generated if path.startswith("infra/knative/")} == expected
    assert {f"infra/knative/{p.name}" for p in (REPO / "infra" / "knative").iterdir()} == expected


def test_check_reports_drift_and_stale_files(tmp_path: Path, generated: dict[str, str]) -> None:
    manifests.write(tmp_path, generated)
    assert manifests.differences(tmp_path, generated) == []
    (tmp_path / "infra/nginx/aiteacher.conf").write_text("# edited by hand\n")
    (tmp_path / "infra/knative/removed-function.yaml").write_text("{}\n")
    (tmp_path / "docker-compose.yml").unlink()
    problems = manifests.differences(tmp_path, generated)
    assert any(p.startswith("differs: infra/nginx/aiteacher.conf") for p in problems)
    assert any("stale" in p and "removed-function" in p for p in problems)
    assert "missing: docker-compose.yml" in problems
    manifests.write(tmp_path, generated)  # regenerating repairs all three, and removes the stale file
    assert manifests.differences(tmp_path, generated) == []
    assert not (tmp_path / "infra/knative/removed-function.yaml").exists()


def test_cli_check_exit_codes(tmp_path: Path, generated: dict[str, str]) -> None:
    command = [sys.executable, "-m", "aiteacher.cli", "manifests", "--check"]
    ok = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    manifests.write(tmp_path, generated)
    (tmp_path / "stack.pro.yml").write_text("version: 1.0\n")
    drift = subprocess.run(
        [*command, "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert drift.returncode == 1
    assert "stack.pro.yml" in drift.stderr


def test_use_env_writes_another_registry_elsewhere(tmp_path: Path) -> None:
    environ = {"REGISTRY": "registry.example.edu/ai", "TAG": "2026.11"}
    files = manifests.generate(manifests.load(REPO, environ, namespace="aiteacher"))
    manifests.write(tmp_path, files)
    service = yaml.safe_load((tmp_path / "infra/knative" / f"{SPECS[0].name}.yaml").read_text())
    assert (
        service["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"registry.example.edu/ai/{SPECS[0].name}:2026.11"
    )
    assert service["metadata"]["namespace"] == "aiteacher"
    worker = next(yaml.safe_load_all((tmp_path / "infra/k8s/worker.yaml").read_text()))
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.edu/ai/worker:2026.11"


def test_expand_uses_defaults_or_the_environment() -> None:
    value = "${REGISTRY:-ghcr.io/aiteacher}/x:${TAG:-latest}"
    assert manifests.expand(value) == "ghcr.io/aiteacher/x:latest"
    assert (
        manifests.expand(value, {"REGISTRY": "registry.example.edu/ai", "TAG": "1.2.3"})
        == "registry.example.edu/ai/x:1.2.3"
    )
    assert manifests.expand("${DATABASE_READ_URL:-}") == ""


def test_duration_parsing_matches_of_watchdog() -> None:
    assert manifests.duration_seconds("60s") == 60
    assert manifests.duration_seconds("1m30s") == 90
    assert manifests.duration_seconds("120") == 120
    assert manifests.duration_seconds("") == 0


# --- Knative ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_knative_service_matches_the_crd_schema(spec) -> None:  # type: ignore[no-untyped-def]
    document = knative(spec.name)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_rejects_misplaced_and_mistyped_fields() -> None:
    document = knative(SPECS[0].name)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    broken = json.loads(json.dumps(document))
    broken["spec"]["template"]["spec"]["containers"][0]["timeoutSeconds"] = 60  # belongs to the revision spec
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(document))
    broken["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] = 0  # not a string
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(document))
    broken["spec"]["template"]["spec"]["containerConcurrency"] = "4"
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(document))
    del broken["spec"]["template"]["spec"]["containers"]
    assert not validator.is_valid(broken)


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_knative_scaling_and_probes(spec, stack: manifests.Stack) -> None:  # type: ignore[no-untyped-def]
    document = knative(spec.name)
    assert document["metadata"]["name"] == spec.name and DNS_LABEL.match(spec.name)
    template = document["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    # min-scale follows stack.yml's com.openfaas.scale.min (it was hard-coded to 0 while stack.yml said 1).
    assert annotations["autoscaling.knative.dev/min-scale"] == spec.labels.get("com.openfaas.scale.min", "0")
    assert annotations["autoscaling.knative.dev/max-scale"] == spec.labels.get("com.openfaas.scale.max", "5")
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/metric"] in ("concurrency", "rps")
    body = template["spec"]
    assert 0 < body["timeoutSeconds"] <= 600
    assert 0 < int(annotations["autoscaling.knative.dev/target"]) <= body["containerConcurrency"] <= 1000
    container = body["containers"][0]
    assert container["image"] == manifests.expand(spec.raw["image"])
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    # /_/health is answered by of-watchdog itself; /_/ready is proxied to the app (ready_path).
    assert container["readinessProbe"]["httpGet"]["path"] == "/_/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_/health"
    assert container["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_knative_environment(spec, stack: manifests.Stack) -> None:  # type: ignore[no-untyped-def]
    container = knative(spec.name)["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert "PORT" not in env  # Knative sets it; the image's CMD hands it to the watchdog
    expected = {k: v for k, v in stack.environment(spec).items() if k not in manifests.WATCHDOG_ENV}
    assert {k: v for k, v in env.items() if k not in manifests.WATCHDOG_ENV} == expected
    assert env["FUNCTION_NAME"] == spec.name
    timeout = knative(spec.name)["spec"]["template"]["spec"]["timeoutSeconds"]
    # The watchdog writes its 504 only before write_timeout: write > exec, and the revision's timeout
    # (Knative's own deadline) comes after the watchdog's write deadline.
    exec_s, write_s = (manifests.duration_seconds(env[k]) for k in ("exec_timeout", "write_timeout"))
    assert manifests.duration_seconds(env["read_timeout"]) == exec_s
    assert exec_s < write_s <= timeout <= 600
    assert "upstream_timeout" not in env and "max_request_size" not in env


def test_every_generated_watchdog_config_writes_after_it_executes() -> None:
    """env/*.yml, the template's Dockerfile defaults, compose and Knative: write_timeout > exec_timeout,
    and only settings of-watchdog reads (no upstream_timeout / max_request_size, which it ignores)."""
    import re

    import yaml

    root = Path(__file__).resolve().parents[2]
    configs: dict[str, dict[str, str]] = {}
    for path in sorted((root / "env").glob("*.yml")):
        configs[path.name] = {k: str(v) for k, v in (yaml.safe_load(path.read_text())["environment"]).items()}
    dockerfile = (root / "template/aiteacher-fastapi/Dockerfile").read_text()
    configs["Dockerfile"] = dict(re.findall(r"\b(\w+_timeout)=(\S+)", dockerfile))
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if "exec_timeout" in env:
            configs[f"compose:{name}"] = {k: str(v) for k, v in env.items()}
    for path in sorted((root / "infra/knative").glob("*.yaml")):
        container = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]["containers"][0]
        configs[path.name] = {item["name"]: item["value"] for item in container["env"]}
    assert len(configs) > 4
    for name, env in configs.items():
        assert "upstream_timeout" not in env and "max_request_size" not in env, name
        if "exec_timeout" in env or "write_timeout" in env:
            assert manifests.duration_seconds(env["write_timeout"]) > manifests.duration_seconds(env["exec_timeout"]), (
                name
            )


def test_optional_openai_key_does_not_block_a_knative_pod() -> None:
    for name in ("chat", "search"):
        sources = knative(name)["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
        by_name = {source["secret"]["name"]: source["secret"] for source in sources}
        assert by_name["openai-api-key"].get("optional") is True
        assert "optional" not in by_name["jwt-secret"] and "optional" not in by_name["database-url"]


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_knative_secrets_are_files_the_settings_read(spec, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spec_body = knative(spec.name)["spec"]["template"]["spec"]
    if not spec.secrets:
        assert "volumes" not in spec_body
        return
    mount = spec_body["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "secrets", "mountPath": "/var/openfaas/secrets", "readOnly": True}
    sources = spec_body["volumes"][0]["projected"]["sources"]
    files = {item["path"]: source["secret"]["name"] for source in sources for item in source["secret"]["items"]}
    assert files == {name: name for name in spec.secrets}
    # What the kubelet writes there, the settings read (hyphenated file name -> field).
    from aiteacher.config import Settings

    for name in files:
        (tmp_path / name).write_text(f"value-of-{name}-0123456789-0123456789-0123456789\n")
        assert name.replace("-", "_") in Settings.model_fields, f"no setting reads the secret {name}"
    for variable in [name.replace("-", "_").upper() for name in files] + ["AITEACHER_ENV"]:
        monkeypatch.delenv(variable, raising=False)
    settings = Settings(secrets_dir=tmp_path)
    for name in files:
        assert getattr(settings, name.replace("-", "_")) == f"value-of-{name}-0123456789-0123456789-0123456789"


# --- OpenFaaS Community Edition and the Pro overlay --------------------------------------------------


def test_stack_yml_deploys_on_community_edition() -> None:
    assert len(SPECS) <= 15
    for spec in SPECS:
        assert DNS_LABEL.match(spec.name), spec.name
        assert not set(manifests.PRO_LABELS) & set(spec.labels), f"{spec.name} carries a Pro-only label"
        for label in ("com.openfaas.scale.min", "com.openfaas.scale.max"):
            assert 1 <= int(spec.labels.get(label, "1")) <= 5, (spec.name, label)


def test_pro_overlay_is_stack_yml_plus_the_scale_to_zero_labels() -> None:
    stack_doc = yaml.safe_load((REPO / "stack.yml").read_text())
    pro_doc = yaml.safe_load((REPO / "stack.pro.yml").read_text())
    assert list(pro_doc["functions"]) == list(stack_doc["functions"])
    for name, function in pro_doc["functions"].items():
        labels = function["labels"]
        assert labels["com.openfaas.scale.zero"] == "true"
        assert re.fullmatch(r"\d+m", labels["com.openfaas.scale.zero-duration"])
        assert int(labels["com.openfaas.scale.target"]) >= 1
        assert labels["com.openfaas.scale.type"] in ("capacity", "rps", "cpu")
        for label in manifests.PRO_LABELS:
            del labels[label]
        assert function == stack_doc["functions"][name]
    assert {k: v for k, v in pro_doc.items() if k != "functions"} == {
        k: v for k, v in stack_doc.items() if k != "functions"
    }
    assert "${REGISTRY:-" in (REPO / "stack.pro.yml").read_text()  # placeholders left for faas-cli


# --- Kubernetes: worker, KEDA, migration Job, PgBouncer ------------------------------------------------


def k8s(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / name).read_text()) if d]


@pytest.mark.parametrize("name", ["worker.yaml", "migrate-job.yaml", "pgbouncer.yaml"])
def test_k8s_documents_are_well_formed(name: str, stack: manifests.Stack) -> None:
    for document in k8s(name):
        assert {"apiVersion", "kind", "metadata"} <= document.keys()
        assert DNS_LABEL.match(document["metadata"]["name"])
        assert document["metadata"]["namespace"] == stack.namespace()


def test_worker_scales_from_zero_on_every_rq_queue() -> None:
    from aiteacher.queue import QUEUES

    deployment, scaled = k8s("worker.yaml")
    assert deployment["kind"] == "Deployment" and scaled["kind"] == "ScaledObject"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["aiteacher", "worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] == 0
    lists = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"] if t["type"] == "redis"}
    assert lists == {f"rq:queue:{queue}" for queue in QUEUES}
    env = {item["name"]: item["value"] for item in container["env"]}
    host, port = env["REDIS_URL"].split("://")[1].split("/")[0].split(":")
    assert {t["metadata"]["address"] for t in scaled["spec"]["triggers"]} == {f"{host}:{port}"}
    # A queue is empty while its last job runs: neither KEDA nor SIGTERM may cut a job short.
    from aiteacher_devtools.manifests.common import _job_timeout_seconds

    job_timeout = _job_timeout_seconds()
    assert scaled["spec"]["cooldownPeriod"] >= job_timeout
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= job_timeout


def test_worker_and_migrate_commands_exist() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "aiteacher.cli", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for command in ("worker", "migrate", "manifests", "dev"):
        assert command in help_text


def test_migration_job_runs_aiteacher_migrate_once() -> None:
    (job,) = k8s("migrate-job.yaml")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == ["aiteacher", "migrate"]
    sources = pod["volumes"][0]["projected"]["sources"]
    assert {"database-url"} <= {s["secret"]["name"] for s in sources}


def test_pgbouncer_k8s_uses_the_committed_config() -> None:
    config_map, deployment, service = k8s("pgbouncer.yaml")
    assert config_map["data"]["pgbouncer.ini"] == (REPO / "infra/pgbouncer/pgbouncer.ini").read_text()
    assert service["spec"]["ports"][0]["port"] == 6432
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 6432
