"""Cold start is a product feature: each function module imports in a fresh interpreter without
building settings or touching a server, and without heavy clients it does not need on every request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aiteacher_devtools.stack import functions

HEAVY = [
    "openai",
    "qdrant_client",
    "qdrant_edge",
    "boto3",
    "pypdf",
    "onnxruntime",
    "rq",
    "sqlalchemy",
    "redis",
    "jwt",
    "passlib",
    "numpy",
    "tokenizers",
]
PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fn", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import aiteacher.config as config
print(json.dumps({"modules": sorted(m.split(".")[0] for m in sys.modules), "app": type(module.app).__name__,
                  "handler": callable(getattr(module, "handler", None)),
                  "settings_built": config.get_settings.cache_info().currsize}))
"""


@pytest.mark.parametrize("spec", functions(), ids=lambda spec: spec.name)
def test_function_imports_light(spec) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("AITEACHER_ENV", "JWT_SECRET")}
    env["AITEACHER_ENV"] = "production"  # would refuse to build settings without a secret: import must not build them
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(spec.handler_dir / "handler.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["app"] == "FastAPI" and report["handler"], report
    assert report["settings_built"] == 0
    loaded = sorted(set(report["modules"]) & set(HEAVY))
    assert loaded == [], f"{spec.name} imports {loaded} at import time"
