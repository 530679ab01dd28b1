"""Embeddings: the real local MiniLM model (no mocks) and the OpenAI client against a real HTTP
server on 127.0.0.1 that speaks the `/v1/embeddings` shape."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aiteacher.embeddings import (
    Embedder,
    EmbeddingError,
    LocalMiniLMEmbedder,
    ModelIntegrityError,
    OpenAIEmbedder,
    get_embedder,
)

TEXTS = [
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Binary search halves the search interval at every step.",
    "A short one.",
    "The French Revolution began in 1789 and reshaped European politics for decades to come.",
    "Newton's second law: force equals mass times acceleration.",
    "Dijkstra's algorithm finds shortest paths in graphs with non-negative edge weights.",
    "x",
    "",
    "Mitochondria are the powerhouse of the cell, producing ATP through oxidative phosphorylation.",
    "SQL joins combine rows from two or more tables based on a related column between them.",
    "The derivative of sin(x) is cos(x).",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


@pytest.fixture(scope="module")
def local() -> LocalMiniLMEmbedder:
    return LocalMiniLMEmbedder()


# --- local MiniLM ------------------------------------------------------------------------------
def test_local_embedder_identity(local: LocalMiniLMEmbedder) -> None:
    assert isinstance(local, Embedder)
    assert local.name == "all-MiniLM-L6-v2-onnx-int8"
    assert local.dimension == 384


def test_local_vectors_are_unit_length_and_384_d(local: LocalMiniLMEmbedder) -> None:
    vectors = local.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert len(vector) == 384
        assert all(isinstance(x, float) for x in vector)
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_local_is_deterministic(local: LocalMiniLMEmbedder) -> None:
    first = local.embed(TEXTS)
    second = local.embed(TEXTS)
    other_instance = LocalMiniLMEmbedder(threads=1).embed(TEXTS)
    for a, b, c in zip(first, second, other_instance, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) == 0.0
        assert max(abs(x - y) for x, y in zip(a, c, strict=True)) < 1e-5


def test_local_batch_equals_single(local: LocalMiniLMEmbedder) -> None:
    batched = local.embed(TEXTS)  # 11 texts of mixed lengths: two padded batches
    for text, vector in zip(TEXTS, batched, strict=True):
        single = local.embed_query(text)
        assert max(abs(x - y) for x, y in zip(vector, single, strict=True)) < 1e-5


def test_local_semantics(local: LocalMiniLMEmbedder) -> None:
    cat, kitten, tax, graph = local.embed(
        [
            "The cat sits on the mat.",
            "A kitten is resting on a rug.",
            "Corporate tax returns are due at the end of the fiscal quarter.",
            "Shortest path algorithms on weighted graphs.",
        ]
    )
    dijkstra = local.embed_query("How does Dijkstra's algorithm work?")
    assert cosine(cat, kitten) > cosine(cat, tax) + 0.3
    assert cosine(cat, kitten) > cosine(cat, graph) + 0.3
    assert cosine(dijkstra, graph) > max(cosine(dijkstra, cat), cosine(dijkstra, tax)) + 0.2


def test_local_truncates_long_texts_at_256_tokens(local: LocalMiniLMEmbedder) -> None:
    words = " ".join(f"topic{i % 50} lecture notes" for i in range(400))  # well over 256 tokens
    assert len(local._tokenizer.encode(words).ids) == 256
    long_vector, longer_vector, short_vector = local.embed(
        [words, words + " and a completely different ending", "topic0 lecture notes"]
    )
    assert len(long_vector) == 384
    assert norm(long_vector) == pytest.approx(1.0, abs=1e-5)
    # Everything past the 256th token is cut, so the tails cannot change the vector.
    assert max(abs(x - y) for x, y in zip(long_vector, longer_vector, strict=True)) < 1e-5
    # ... but the 256 tokens kept are more than the file's own 128-token truncation would keep.
    truncated_128 = local._tokenizer.decode(local._tokenizer.encode(words).ids[:127], skip_special_tokens=True)
    assert max(abs(x - y) for x, y in zip(long_vector, local.embed_query(truncated_128), strict=True)) > 1e-3
    assert short_vector != long_vector


def test_local_empty_input(local: LocalMiniLMEmbedder) -> None:
    assert local.embed([]) == []


def test_local_rejects_a_model_with_another_digest() -> None:
    with pytest.raises(ModelIntegrityError, match="sha256"):
        LocalMiniLMEmbedder(model_sha256="0" * 64)


def test_local_rejects_a_missing_tokenizer(tmp_path) -> None:
    with pytest.raises(ModelIntegrityError, match="not found"):
        LocalMiniLMEmbedder(tokenizer_path=tmp_path / "tokenizer.json")


def test_local_rejects_oversized_batches() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LocalMiniLMEmbedder(batch_size=32)


def test_importing_the_packages_loads_no_heavy_library() -> None:
    code = (
        "import sys, aiteacher.embeddings, aiteacher.vectors\n"
        "heavy = ['numpy', 'onnxruntime', 'tokenizers', 'openai', 'qdrant_client', 'qdrant_edge']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


# --- OpenAI(-compatible) over real HTTP on 127.0.0.1 ---------------------------------------------
@dataclass
class FakeOpenAI:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses to answer before succeeding
    delay_seconds: float = 0.0
    dimensions: dict[str, int] = field(default_factory=lambda: {"text-embedding-3-small": 1536})

    def vector(self, model: str, text: str) -> list[float]:
        size = self.dimensions.get(model, 5)
        vector = [0.0] * size
        vector[0], vector[1] = float(len(text) + 1), 2.0  # deliberately not unit length
        return vector


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if fake.delay_seconds:
                time.sleep(fake.delay_seconds)
            if fake.fail_next:
                self._reply(fake.fail_next.pop(0), {"error": {"message": "boom", "type": "server_error"}})
                return
            if self.path != "/v1/embeddings":
                self._reply(404, {"error": {"message": "not found"}})
                return
            inputs = body["input"]
            data = [
                {"object": "embedding", "index": i, "embedding": fake.vector(body["model"], text)}
                for i, text in enumerate(inputs)
            ]
            data.reverse()  # the API does not promise order; the client must sort by index
            self._reply(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test): nothing to answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = FakeOpenAI(url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def openai_embedder(fake: FakeOpenAI, **overrides: Any) -> OpenAIEmbedder:
    options: dict[str, Any] = {
        "model": "text-embedding-3-small",
        "api_key": "sk-test",
        "base_url": fake.url,
        "timeout": 5.0,
        "max_retries": 0,
    }
    options.update(overrides)
    return OpenAIEmbedder(**options)


def test_openai_batches_requests_and_parses_vectors(fake_openai: FakeOpenAI) -> None:
    embedder = openai_embedder(fake_openai, batch_size=3)
    texts = ["alpha", "be", "gamma ray", "d", "epsilon", "zeta function", "eta"]
    vectors = embedder.embed(texts)

    assert embedder.name == "openai:text-embedding-3-small"
    assert embedder.dimension == 1536
    assert [len(r["body"]["input"]) for r in fake_openai.requests] == [3, 3, 1]
    assert [text for r in fake_openai.requests for text in r["body"]["input"]] == texts
    for request in fake_openai.requests:
        assert request["path"] == "/v1/embeddings"
        assert request["auth"] == "Bearer sk-test"
        assert request["body"]["model"] == "text-embedding-3-small"
        assert request["body"]["encoding_format"] == "float"
    for text, vector in zip(texts, vectors, strict=True):
        assert len(vector) == 1536
        assert norm(vector) == pytest.approx(1.0, abs=1e-9)
        scale = math.hypot(len(text) + 1, 2.0)
        assert vector[0] == pytest.approx((len(text) + 1) / scale)
        assert vector[1] == pytest.approx(2.0 / scale)


def test_openai_query_empty_and_blank_inputs(fake_openai: FakeOpenAI) -> None:
    embedder = openai_embedder(fake_openai)
    assert embedder.embed([]) == []
    assert fake_openai.requests == []
    assert len(embedder.embed_query("what is a graph?")) == 1536
    embedder.embed(["", "text"])
    assert fake_openai.requests[-1]["body"]["input"] == [" ", "text"]


def test_openai_unknown_model_learns_its_dimension_once(fake_openai: FakeOpenAI) -> None:
    embedder = openai_embedder(fake_openai, model="nomic-embed-text")
    assert embedder.name == "openai:nomic-embed-text"
    assert embedder.dimension == 5
    assert embedder.dimension == 5
    assert len(fake_openai.requests) == 1
    assert len(embedder.embed_query("probe")) == 5


def test_openai_retries_server_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next = [500]
    vectors = openai_embedder(fake_openai, max_retries=1).embed(["retry me"])
    assert len(vectors) == 1
    assert len(fake_openai.requests) == 2


def test_openai_errors_become_embedding_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next = [400]
    with pytest.raises(EmbeddingError, match=r"127\.0\.0\.1"):
        openai_embedder(fake_openai).embed(["bad"])
    assert len(fake_openai.requests) == 1


def test_openai_timeout_is_enforced(fake_openai: FakeOpenAI) -> None:
    fake_openai.delay_seconds = 2.0
    with pytest.raises(EmbeddingError):
        openai_embedder(fake_openai, timeout=0.3).embed(["slow"])


def test_openai_needs_a_key_or_a_server() -> None:
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(model="text-embedding-3-small")


# --- get_embedder --------------------------------------------------------------------------------
@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("AITEACHER_ENV", "test")
    reset_caches()
    yield monkeypatch
    reset_caches()


def test_get_embedder_openai(settings_env: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> None:
    from aiteacher.config import reset_caches

    settings_env.setenv("EMBEDDING_PROVIDER", "openai")
    settings_env.setenv("OPENAI_BASE_URL", fake_openai.url)
    settings_env.setenv("OPENAI_API_KEY", "sk-settings")
    settings_env.setenv("OPENAI_EMBEDDING_BATCH_SIZE", "2")
    reset_caches()
    embedder = get_embedder()
    assert isinstance(embedder, OpenAIEmbedder)
    assert get_embedder() is embedder
    embedder.embed(["a", "b", "c"])
    assert [len(r["body"]["input"]) for r in fake_openai.requests] == [2, 1]
    assert fake_openai.requests[0]["auth"] == "Bearer sk-settings"


def test_get_embedder_local(settings_env: pytest.MonkeyPatch) -> None:
    from aiteacher.config import reset_caches

    settings_env.setenv("EMBEDDING_PROVIDER", "local")
    settings_env.setenv("EMBEDDING_THREADS", "1")
    reset_caches()
    embedder = get_embedder()
    assert isinstance(embedder, LocalMiniLMEmbedder)
    assert embedder.threads == 1
    assert get_embedder() is embedder
