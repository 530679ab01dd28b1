"""The one way an `openai.OpenAI` client is built (embeddings and the LLM provider share it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

#: Sent as the bearer token to an OpenAI-compatible server that needs none (the client insists on one).
NO_KEY = "unused"


def build_client(*, api_key: str, base_url: str, timeout: float, max_retries: int) -> Any:
    """An explicit timeout and retry budget (the SDK retries 429 and 5xx with backoff)."""
    import openai

    return openai.OpenAI(api_key=api_key or NO_KEY, base_url=base_url or None, timeout=timeout, max_retries=max_retries)


def build_async_client(*, api_key: str, base_url: str, timeout: float, max_retries: int) -> Any:
    """The asyncio twin of `build_client` (same timeout and retries); one per event loop."""
    import openai

    return openai.AsyncOpenAI(
        api_key=api_key or NO_KEY, base_url=base_url or None, timeout=timeout, max_retries=max_retries
    )


def endpoint_label(base_url: str) -> str:
    """Host of the server, for error messages (never the key or the full URL)."""
    return urlsplit(base_url).netloc if base_url else "api.openai.com"
