"""Every function handler has the one shape: `(Body, CurrentUser, Db | ReadDb) -> ReplyModel`. Each JSON route
declares its reply model, and no handler opens a session of its own (the chat turn excepted: it holds no
connection while the model answers, so its service opens two short ones)."""

from __future__ import annotations

import importlib.util
import typing
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from aiteacher_devtools.stack import functions


def _app(spec: Any) -> Any:
    module_spec = importlib.util.spec_from_file_location(
        f"handler_{spec.name.replace('-', '_')}", spec.handler_dir / "handler.py"
    )
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.app


@pytest.mark.parametrize("spec", functions(), ids=lambda spec: spec.name)
def test_every_json_route_declares_its_reply_model(spec: Any) -> None:
    routes = [route for route in _app(spec).routes if isinstance(route, APIRoute) and route.include_in_schema]
    assert routes
    for route in routes:
        # A route that answers with a non-JSON class (204, PNG, an export file) has no JSON body to model.
        json_body = route.response_class is JSONResponse or getattr(route.response_class, "value", None) is not None
        if json_body and route.status_code != 204:
            model = route.response_model
            if typing.get_origin(model) is list:
                (model,) = typing.get_args(model)
            declared = isinstance(model, type) and issubclass(model, BaseModel)
            assert declared, f"{spec.name} {sorted(route.methods)} {route.path}: response_model is {model!r}"


@pytest.mark.parametrize("spec", functions(), ids=lambda spec: spec.name)
def test_no_handler_opens_its_own_transaction(spec: Any) -> None:
    source = (spec.handler_dir / "handler.py").read_text(encoding="utf-8")
    assert "transaction(" not in source, f"{spec.name}: take `Db` / `ReadDb` (aiteacher.web) instead"
