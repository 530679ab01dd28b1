"""Embeddings from OpenAI or any OpenAI-compatible server (`OPENAI_BASE_URL`).

The `openai` package is imported by the constructor, never at module import.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from aiteacher.embeddings.base import EmbeddingError, l2_normalize
from aiteacher.openai_client import build_client, endpoint_label

if TYPE_CHECKING:
    from aiteacher.config import Settings

#: Output sizes of OpenAI's embedding models at their default `dimensions`.
KNOWN_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_BATCH_SIZE = 256


class OpenAIEmbedder:
    """Batched `/v1/embeddings` calls with an explicit timeout and retry budget.

    Thread-safe (the underlying HTTP client is). Vectors are normalized here as well, because an
    OpenAI-compatible server need not return unit vectors.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str = "",
        base_url: str = "",
        timeout: float = 30.0,
        max_retries: int = 2,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if not model:
            raise EmbeddingError("OPENAI_EMBEDDING_MODEL is empty")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not api_key and not base_url:
            raise EmbeddingError(
                "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server)"
            )
        import openai

        self._openai = openai
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self._endpoint = endpoint_label(base_url)
        self._client = build_client(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._dimension: int | None = KNOWN_DIMENSIONS.get(model)
        self._dimension_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        return cls(
            model=settings.openai_embedding_model,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            batch_size=settings.openai_embedding_batch_size,
        )

    @property
    def dimension(self) -> int:
        """Known for OpenAI's models; otherwise learnt from one probe request, once."""
        if self._dimension is None:
            with self._dimension_lock:
                if self._dimension is None:
                    self._dimension = len(self._request(["dimension probe"])[0])
        return self._dimension

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(texts[start : start + self.batch_size]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def close(self) -> None:
        self._client.close()

    def _request(self, batch: list[str]) -> list[list[float]]:
        # The API rejects empty strings; a blank chunk embeds as a single space.
        inputs = [text if text.strip() else " " for text in batch]
        try:
            response: Any = self._client.embeddings.create(model=self.model, input=inputs, encoding_format="float")
        except self._openai.OpenAIError as exc:
            raise EmbeddingError(f"embedding request to {self._endpoint} failed: {exc}") from exc
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(inputs))):
            raise EmbeddingError(
                f"embedding response from {self._endpoint} has {len(data)} vectors for {len(inputs)} inputs"
            )
        vectors = [l2_normalize(item.embedding) for item in data]
        if self._dimension is not None and any(len(vector) != self._dimension for vector in vectors):
            raise EmbeddingError(
                f"embedding response from {self._endpoint} has vectors of another size than {self._dimension}"
            )
        return vectors
