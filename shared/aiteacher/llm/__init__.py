"""The LLM layer: tutor answers, exam items, item verification, learning-state summaries, moderation.

Two providers implement `LLMProvider`: `OpenAIProvider` (OpenAI or any OpenAI-compatible server) and
`OfflineProvider` (deterministic, grounded, no network). `get_llm()` builds the configured one once per
process. Importing this package imports neither `openai` nor any other heavy library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiteacher.llm.base import (
    HINT_LEVELS,
    HINT_SOCRATIC,
    HINT_STRONG,
    HINT_WORKED,
    ChatTurn,
    ExamItem,
    LearningState,
    LLMError,
    LLMProvider,
    McqItem,
    ModerationResult,
    Passage,
    TheoryItem,
    TutorReply,
)
from aiteacher.llm.offline import OfflineProvider
from aiteacher.llm.text import extract_key_terms, near_duplicate
from aiteacher.registry import client

if TYPE_CHECKING:
    from aiteacher.llm.openai_provider import OpenAIProvider

__all__ = [
    "HINT_LEVELS",
    "HINT_SOCRATIC",
    "HINT_STRONG",
    "HINT_WORKED",
    "ChatTurn",
    "ExamItem",
    "LLMError",
    "LLMProvider",
    "LearningState",
    "McqItem",
    "ModerationResult",
    "OfflineProvider",
    "OpenAIProvider",
    "Passage",
    "TheoryItem",
    "TutorReply",
    "extract_key_terms",
    "get_llm",
    "near_duplicate",
]


def __getattr__(name: str) -> Any:
    # The OpenAI provider's reply models cost a few tens of milliseconds to build: only when used.
    if name == "OpenAIProvider":
        from aiteacher.llm.openai_provider import OpenAIProvider

        return OpenAIProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _close(provider: Any) -> None:
    close = getattr(provider, "close", None)
    if close is not None:
        close()


@client(close=_close)
def get_llm() -> LLMProvider:
    """The process-wide provider: `OpenAIProvider` when `LLM_PROVIDER=openai`, or when it is `auto` (the
    default) and `OPENAI_API_KEY` is set; otherwise `OfflineProvider`."""
    from aiteacher.config import get_settings

    settings = get_settings()
    if settings.llm_provider == "openai" or (settings.llm_provider == "auto" and settings.openai_api_key):
        from aiteacher.llm.openai_provider import OpenAIProvider

        return OpenAIProvider.from_settings(settings)
    return OfflineProvider()
