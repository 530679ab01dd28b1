"""LocalStack files: the ready hook (bucket, queue, .pdf notification) and the Lambda deploy script read
their names from the settings and stack.yml, parse as bash, and pin a LocalStack that needs no token."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from aiteacher.config import Settings
from aiteacher_devtools import manifests
from aiteacher_devtools.stack import functions

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
    result = subprocess.run(
        [*command, "-f", str(REPO / "localstack" / "compose.yml"), "config", "-q"],
        cwd=REPO / "localstack",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_localstack_pin_runs_without_a_token() -> None:
    compose = yaml.safe_load((REPO / "localstack" / "compose.yml").read_text())
    image = compose["services"]["localstack"]["image"]
    major, minor, *_ = (int(part) for part in image.rsplit(":", 1)[1].split("."))
    assert (major, minor) <= (4, 14), "LocalStack images after 4.14 need LOCALSTACK_AUTH_TOKEN"
    volumes = compose["services"]["localstack"]["volumes"]
    assert "./init/ready.d:/etc/localstack/init/ready.d:ro" in volumes
    assert all(port.startswith("127.0.0.1:") for port in compose["services"]["localstack"]["ports"])


DOCS = REPO / "docs" / "localstack.md"
COMPOSE_FILE = REPO / "localstack" / "compose.yml"


def test_capitalised_pdf_keys_are_notified_too() -> None:
    # S3 suffix filters are case-sensitive: lecture.PDF matched no rule before.
    assert '\\"Name\\":\\"suffix\\",\\"Value\\":\\".PDF\\"' in HOOK.read_text()
    assert '("upper-pdf-to-lambda", ".PDF")' in DEPLOY.read_text()


def test_moto_bucket_notifies_capitalised_pdf_keys(tmp_path: Path) -> None:
    import boto3

    from aiteacher.storage import get_sqs

    queue_url = os.environ["EVENTS_QUEUE_URL"]
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    key = f"eng/3/algorithms/capitals-{os.getpid()}.PDF"
    s3.put_object(Bucket="curriculum", Key=key, Body=b"%PDF-1.4\n")
    seen = []
    for _ in range(5):
        for message in (
            get_sqs().receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        ):
            seen.append(message["Body"])
            get_sqs().delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if any("capitals-" in body for body in seen):
            break
    assert any(f"capitals-{os.getpid()}.PDF" in body for body in seen)


def test_queue_url_needs_no_public_dns() -> None:
    text = DOCS.read_text()
    urls = re.findall(r"EVENTS_QUEUE_URL=(\S+)", text)
    assert urls and all(url.startswith("http://127.0.0.1:4566/") for url in urls)
    assert "localhost.localstack.cloud" not in text.split("## Developer flow 1")[1].split("## Developer flow 2")[0]
    assert (
        yaml.safe_load(COMPOSE_FILE.read_text())["services"]["localstack"]["environment"]["SQS_ENDPOINT_STRATEGY"]
        == "path"
    )


def test_lambda_zip_carries_no_bytecode() -> None:
    text = DEPLOY.read_text()
    assert "--no-compile" in text and "compileall" not in text
    assert "-name __pycache__" in text


def test_aws_cli_install_installs_the_aws_cli() -> None:
    installs = [line for line in DOCS.read_text().splitlines() if "pip install" in line]
    assert installs and all(re.search(r"pip install .*\bawscli\b", line) for line in installs)


def test_no_host_docker_internal_without_host_gateway() -> None:
    """host.docker.internal does not resolve on Linux: the Lambdas reach postgres/redis on the compose network."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    localstack = services["localstack"]
    assert localstack["environment"]["LAMBDA_DOCKER_NETWORK"] == "aiteacher-localstack"
    assert "host-gateway" in localstack["environment"]["LAMBDA_DOCKER_FLAGS"]
    assert "host.docker.internal:host-gateway" in localstack["extra_hosts"]
    assert {"postgres", "redis"} <= set(services)
    for path in (DOCS, DEPLOY):
        for line in path.read_text().splitlines():
            if "host.docker.internal" in line and not line.lstrip().startswith("#"):
                assert "host-gateway" in line or "does not resolve" in line, (path.name, line)
