"""Text embeddings: the `Embedder` interface, a local ONNX MiniLM and an OpenAI(-compatible) client.

`get_embedder()` builds the one configured by `EMBEDDING_PROVIDER` once per process. Importing this
package loads no model library: numpy, onnxruntime, tokenizers and openai are imported when an
embedder is constructed.
"""

from __future__ import annotations

from aiteacher.embeddings.base import Embedder, EmbeddingError, ModelIntegrityError, l2_normalize
from aiteacher.embeddings.local import LocalMiniLMEmbedder
from aiteacher.embeddings.openai_api import OpenAIEmbedder
from aiteacher.registry import client

__all__ = [
    "Embedder",
    "EmbeddingError",
    "LocalMiniLMEmbedder",
    "ModelIntegrityError",
    "OpenAIEmbedder",
    "get_embedder",
    "l2_normalize",
]


def _close(embedder: Embedder) -> None:
    close = getattr(embedder, "close", None)
    if close is not None:
        close()


@client(close=_close)
def get_embedder() -> Embedder:
    """The process-wide embedder chosen by `settings.embedding_provider` ("local" or "openai")."""
    from aiteacher.config import get_settings

    settings = get_settings()
    if settings.embedding_provider == "openai":
        return _measured(OpenAIEmbedder.from_settings(settings), "openai")
    return _measured(LocalMiniLMEmbedder(threads=settings.embedding_threads or None), "local")


def _measured(embedder: Embedder, provider: str) -> Embedder:
    """Every `embed` call (embed_query goes through it) timed into aiteacher_embedding_duration_seconds."""
    from aiteacher import observability as obs

    embed = embedder.embed

    def timed_embed(texts: list[str]) -> list[list[float]]:
        with obs.timed(obs.EMBEDDING_SECONDS, provider):
            vectors = embed(texts)
        obs.EMBEDDED_TEXTS.labels(provider).inc(len(texts))
        return vectors

    embedder.embed = timed_embed  # type: ignore[method-assign]
    return embedder
