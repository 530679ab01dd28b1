"""Server-sent events from `chat` through a real nginx running the generated edge: `proxy_buffering off` on
the chat routes, and the first `delta` reaches the client while the (fake) model still holds the rest."""

from __future__ import annotations

import random

import httpx

from aiteacher_devtools import manifests
from aiteacher_devtools.stack import functions
from tests.deploy.test_nginx import conf, edge, local_gateway, needs_nginx  # noqa: F401 - fixtures
from tests.fakes import fake_openai_fixture  # noqa: F401 - registers the fake_openai fixture
from tests.helpers import hierarchy, place, signed_in
from tests.integration.test_tutor import openai_configured  # noqa: F401 - fixture
from tests.integration.test_tutor_conversations import course, first_event_before_the_model_finished  # noqa: F401 - fixture


def test_streaming_routes_are_unbuffered_at_the_edge() -> None:
    text = conf("aiteacher.conf")
    for spec in functions():
        block = text.split(f"location = {spec.rest_path.rstrip('/')} {{", 1)[1].split("}", 1)[0]
        streams = spec.annotations.get(manifests.STREAMING_ANNOTATION) == "true"
        assert ("proxy_buffering off;" in block) is streams, spec.name
    assert any(
        spec.name == "chat" and spec.annotations.get(manifests.STREAMING_ANNOTATION) == "true" for spec in functions()
    )


@needs_nginx
def test_chat_streams_through_nginx_before_the_model_finishes(
    edge: str,  # noqa: F811
    gateway,
    course,  # noqa: F811
    openai_configured,  # noqa: F811
) -> None:
    from fastapi.testclient import TestClient

    local = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    with TestClient(gateway, headers={"X-Forwarded-For": local}) as setup:
        user = signed_in(setup)
        place(setup, user, hierarchy(setup)[1], course["semester"])
    transport = httpx.HTTPTransport(local_address=local)
    with httpx.Client(base_url=edge, transport=transport, timeout=20) as http:
        rest = first_event_before_the_model_finished(http, "/chat", user, openai_configured, "nginx")
    assert rest[-1][0] == "done" and rest[-1][1]["refused"] is False
