"""The embedder interface and its errors (no heavy imports here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class EmbeddingError(RuntimeError):
    """An embedding could not be computed (bad configuration, unreachable server, bad response)."""


class ModelIntegrityError(EmbeddingError):
    """A model or tokenizer file on disk is not the pinned one (corrupt install or tampering)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized vectors of a fixed dimension.

    `name` identifies the model that built a vector collection; vectors of two embedders with
    different names are not comparable even when their dimensions agree.
    """

    name: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One normalized vector per text, in the order given; `[]` for `[]`."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        ...


def l2_normalize(vector: Sequence[float]) -> list[float]:
    """`vector / ||vector||` in plain Python (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return [0.0] * len(vector)
    return [x / norm for x in vector]
