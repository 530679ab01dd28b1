"""The deployment guides exist and cover what stack.yml needs: every secret, the commands, the limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiteacher_devtools.stack import functions

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_openfaas_guide_covers_every_secret_and_step() -> None:
    text = (DOCS / "deploy-openfaas.md").read_text()
    for secret in sorted({secret for spec in functions() for secret in spec.secrets}):
        assert f"faas-cli secret create {secret}" in text, secret
    for needle in (
        "faas-cli build",
        "faas-cli push",
        "faas-cli deploy",
        "faas-cli up",
        "notify_webhook:1",
        "mc event add",
        "arn:minio:sqs::1:webhook --event put --suffix .pdf",
        "aiteacher migrate",
        "stack.pro.yml",
        "15 functions",
        "at most 5",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("name", ["knative.md", "localstack.md", "docker-compose.md"])
def test_other_guides_exist(name: str) -> None:
    assert len((DOCS / name).read_text()) > 500
