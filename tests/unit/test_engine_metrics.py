"""LLM call latency and tokens, and embedding time, land in the Prometheus registry the functions expose."""

from __future__ import annotations

from aiteacher import observability as obs
from tests.fakes import FakeOpenAIServer, fake_openai_fixture  # noqa: F401  (the fake_openai fixture)
from tests.unit.llm.test_openai_provider import ask, make_provider


def _value(name: str, labels: dict[str, str]) -> float:
    return obs.REGISTRY.get_sample_value(name, labels) or 0.0


def test_llm_calls_record_latency_and_tokens(fake_openai: FakeOpenAIServer) -> None:
    calls = _value("aiteacher_llm_request_duration_seconds_count", {"provider": "openai", "call": "tutor_answer"})
    prompt = _value("aiteacher_llm_tokens_total", {"provider": "openai", "kind": "prompt"})
    completion = _value("aiteacher_llm_tokens_total", {"provider": "openai", "kind": "completion"})
    fake_openai.queue_chat_json({"answer": "Think about the pump [S1]. What does it move?", "citations": ["S1"]})
    ask(make_provider(fake_openai))
    assert (
        _value("aiteacher_llm_request_duration_seconds_count", {"provider": "openai", "call": "tutor_answer"})
        == calls + 1
    )
    assert _value("aiteacher_llm_tokens_total", {"provider": "openai", "kind": "prompt"}) == prompt + 10
    assert _value("aiteacher_llm_tokens_total", {"provider": "openai", "kind": "completion"}) == completion + 10


def test_embedding_batches_are_timed() -> None:
    from aiteacher.embeddings import get_embedder

    before = _value("aiteacher_embedding_duration_seconds_count", {"provider": "local"})
    texts = _value("aiteacher_embedded_texts_total", {"provider": "local"})
    embedder = get_embedder()
    embedder.embed(["quicksort picks a pivot", "merge sort merges"])
    embedder.embed_query("pivot")
    assert _value("aiteacher_embedding_duration_seconds_count", {"provider": "local"}) == before + 2
    assert _value("aiteacher_embedded_texts_total", {"provider": "local"}) == texts + 3
