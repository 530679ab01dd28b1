"""Reusable fakes for tests. `FakeOpenAIServer` speaks the OpenAI HTTP API on 127.0.0.1.

To use the `fake_openai` fixture in a test module (no conftest needed)::

    from tests.fakes import fake_openai_fixture  # noqa: F401  (registers the `fake_openai` fixture)

    def test_something(fake_openai): ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import (
    FakeOpenAIServer,
    FakeResponse,
    RecordedRequest,
    chat_completion,
    embedding_vector,
    error_body,
    moderation_result,
    running_fake_openai,
)

__all__ = [
    "FakeOpenAIServer",
    "FakeResponse",
    "RecordedRequest",
    "chat_completion",
    "embedding_vector",
    "error_body",
    "fake_openai_fixture",
    "moderation_result",
    "running_fake_openai",
]

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(name="fake_openai")
def fake_openai_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A running `FakeOpenAIServer`; proxies are bypassed so the client talks to 127.0.0.1 directly."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeOpenAIServer() as fake:
        yield fake
