"""LocalStack files: the ready hook (bucket, queue, .pdf notification) and the Lambda deploy script read
their names from the settings and stack.yml, parse as bash, and pin a LocalStack that needs no token."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from aiteacher import manifests
from aiteacher.config import Settings
from aiteacher.stack import functions

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "localstack" / "init" / "ready.d" / "10-curriculum.sh"
DEPLOY = REPO / "localstack" / "deploy-lambdas.sh"


@pytest.mark.parametrize("script", [HOOK, DEPLOY], ids=lambda p: p.name)
def test_scripts_are_executable_bash(script: Path) -> None:
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!")
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in script.read_text()


def test_ready_hook_creates_bucket_queue_and_pdf_notification() -> None:
    text = HOOK.read_text()
    assert f'BUCKET="${{S3_BUCKET:-{Settings.model_fields["s3_bucket"].default}}}"' in text
    assert "create-bucket" in text and "create-queue" in text
    assert "put-bucket-notification-configuration" in text
    assert '\\"Events\\":[\\"s3:ObjectCreated:*\\"]' in text
    assert '\\"Name\\":\\"suffix\\",\\"Value\\":\\".pdf\\"' in text
    assert "QueueConfigurations" in text and "RedrivePolicy" in text


def test_deploy_script_takes_the_function_list_from_stack_yml() -> None:
    text = DEPLOY.read_text()
    assert "manifests --lambda-plan" in text
    assert "--handler handler.handler" in text and "create-function-url-config" in text
    code = "\n".join(line.split(" # ")[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
    for spec in functions():  # nothing repeats the list (object-created is only a configurable default)
        if spec.name != manifests.OBJECT_CREATED_FUNCTION:
            assert not re.search(rf"(?<![\w-]){re.escape(spec.name)}(?![\w-])", code), spec.name


def test_lambda_plan_covers_every_function() -> None:
    plan = manifests.lambda_plan(manifests.load(REPO))
    assert [entry["name"] for entry in plan] == [spec.name for spec in functions()]
    declared = manifests.declared_extras(REPO)
    for entry, spec in zip(plan, functions(), strict=True):
        assert (Path(entry["handler_dir"]) / "handler.py").is_file()
        assert "lambda" in manifests.resolve_extras(entry["extras"], declared)
        assert 1 <= entry["timeout"] <= 900 and entry["memory"] >= 128
        assert entry["environment"]["FUNCTION_NAME"] == spec.name
        assert not set(entry["environment"]) & set(manifests.WATCHDOG_ENV)


def test_localstack_compose_config() -> None:
    from tests.deploy.test_compose import _compose_command

    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*command, "-f", str(REPO / "localstack" / "compose.yml"), "config", "-q"],
                            cwd=REPO / "localstack", capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_localstack_pin_runs_without_a_token() -> None:
    compose = yaml.safe_load((REPO / "localstack" / "compose.yml").read_text())
    image = compose["services"]["localstack"]["image"]
    major, minor, *_ = (int(part) for part in image.rsplit(":", 1)[1].split("."))
    assert (major, minor) <= (4, 14), "LocalStack images after 4.14 need LOCALSTACK_AUTH_TOKEN"
    volumes = compose["services"]["localstack"]["volumes"]
    assert "./init/ready.d:/etc/localstack/init/ready.d:ro" in volumes
    assert all(port.startswith("127.0.0.1:") for port in compose["services"]["localstack"]["ports"])
