"""Reads stack.yml, the one list of functions (the gateway, the generated manifests and the tests use it).
No function reads it at run time: each gets what stack.yml says through its environment."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

REST_ANNOTATION = "aiteacher.dev/rest-path"
METHODS_ANNOTATION = "aiteacher.dev/methods"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler_dir: Path
    rest_path: str
    methods: tuple[str, ...]
    extras: str
    environment: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_limit(self) -> str:
        """Its RATE_LIMIT ("requests/seconds" per caller) from stack.yml; empty: the default limit."""
        return self.environment.get("RATE_LIMIT", "")


def find_stack_file() -> Path:
    explicit = os.environ.get("AITEACHER_STACK_FILE")
    if explicit:
        return Path(explicit)
    for folder in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (folder / "stack.yml").is_file():
            return folder / "stack.yml"
    raise FileNotFoundError("stack.yml not found: run from the repository or set AITEACHER_STACK_FILE")


@lru_cache(maxsize=4)
def load_stack(path: Path | None = None) -> tuple[dict[str, Any], list[FunctionSpec]]:
    import yaml

    stack_path = path or find_stack_file()
    document = yaml.safe_load(stack_path.read_text())
    specs = []
    for name, fn in (document.get("functions") or {}).items():
        annotations = {str(k): str(v) for k, v in (fn.get("annotations") or {}).items()}
        specs.append(
            FunctionSpec(
                name=name,
                handler_dir=(stack_path.parent / fn["handler"]).resolve(),
                rest_path=annotations.get(REST_ANNOTATION, f"/{name}"),
                methods=tuple(m.strip().upper() for m in annotations.get(METHODS_ANNOTATION, "GET,POST").split(",")),
                extras=str((fn.get("build_args") or {}).get("EXTRAS", "")),
                environment={str(k): str(v) for k, v in (fn.get("environment") or {}).items()},
                secrets=tuple(fn.get("secrets") or ()),
                labels={str(k): str(v) for k, v in (fn.get("labels") or {}).items()},
                annotations=annotations,
                raw=fn,
            )
        )
    return document, specs


def functions() -> list[FunctionSpec]:
    return load_stack()[1]


def load_app(spec: FunctionSpec) -> Any:
    """Import functions/<name>/handler.py under a unique module name and return its ASGI `app`, carrying its
    stack.yml rate limit (`app.state.rate_limit`: one process serves many functions, so RATE_LIMIT, which
    is one per process, cannot)."""
    module_name = "aiteacher_fn_" + spec.name.replace("-", "_")
    if module_name in sys.modules:
        app = sys.modules[module_name].app
        app.state.rate_limit = spec.rate_limit
        return app
    location = spec.handler_dir / "handler.py"
    module_spec = importlib.util.spec_from_file_location(module_name, location)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {location}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    module.app.state.rate_limit = spec.rate_limit
    return module.app
