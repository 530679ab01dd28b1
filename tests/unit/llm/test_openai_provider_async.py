"""The OpenAI provider's asyncio path (the chat function's): the same request shape, repair round, error
mapping and moderation fallback as the sync path, plus the streamed answer, against the fake server."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from aiteacher.llm import LLMError, TutorReply
from tests.fakes import (
    FakeOpenAIServer,
    fake_openai_fixture,  # noqa: F401  (registers the `fake_openai` fixture)
)
from tests.unit.llm.test_openai_provider import PASSAGES, make_provider

QUESTION = "Why is a resting neuron negative inside?"
OPTIONS: dict[str, Any] = {"history": [], "learning_state": None, "hint_level": 0}


def test_async_answer_has_the_sync_request_shape_and_cites_what_it_used(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue_chat_json({"answer": "Look at the pump [S1]. What does it move?", "citations": ["S1"]})
    reply = asyncio.run(make_provider(fake_openai).tutor_answer_async(QUESTION, PASSAGES, **OPTIONS))
    assert reply.used_passages == [PASSAGES[0]]
    assert "[Neurons and Signals, p. 2]" in reply.answer
    body = fake_openai.requests_to("chat")[-1].body
    assert body["model"] == "gpt-test" and body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["name"] == "tutor_answer"
    assert fake_openai.requests_to("chat")[-1].headers["authorization"] == "Bearer sk-test"


def test_async_invalid_reply_gets_one_repair_then_fails(fake_openai: FakeOpenAIServer) -> None:
    provider = make_provider(fake_openai)
    fake_openai.queue_chat("not json")
    fake_openai.queue_chat_json({"answer": "The pump [S2]. Why?", "citations": ["S2"]})
    reply = asyncio.run(provider.tutor_answer_async(QUESTION, PASSAGES, **OPTIONS))
    assert reply.used_passages == [PASSAGES[1]] and len(fake_openai.requests_to("chat")) == 2
    fake_openai.queue_chat("still not json")
    fake_openai.queue_chat_json({"answer": "x", "citations": ["S7"]})
    with pytest.raises(LLMError, match="twice"):
        asyncio.run(provider.tutor_answer_async(QUESTION, PASSAGES, **OPTIONS))


@pytest.mark.parametrize(("status", "detail"), [(500, "HTTP 500"), (429, "rate limited")])
def test_async_errors_become_llm_unavailable_without_secrets(
    fake_openai: FakeOpenAIServer, status: int, detail: str
) -> None:
    fake_openai.queue_error("chat", status, headers={"x-should-retry": "false"})
    with pytest.raises(LLMError) as raised:
        asyncio.run(make_provider(fake_openai).tutor_answer_async(QUESTION, PASSAGES, **OPTIONS))
    assert detail in str(raised.value) and "sk-test" not in str(raised.value)


def test_async_moderation_verdict_and_offline_fallback_without_an_endpoint(fake_openai: FakeOpenAIServer) -> None:
    provider = make_provider(fake_openai)
    fake_openai.queue_moderation(True, ["self-harm"])
    verdict = asyncio.run(provider.moderate_async("something"))
    assert verdict.flagged and verdict.categories == ["self-harm"]
    fake_openai.queue_error("moderations", 404)
    fallback = asyncio.run(provider.moderate_async("I want to kill myself"))
    assert fallback.flagged and "self-harm" in fallback.categories
    asyncio.run(provider.moderate_async("hello"))
    assert len(fake_openai.requests_to("moderations")) == 2, "a missing endpoint is not asked again"


def test_streamed_answer_turns_markers_into_pages_as_they_close(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue_chat_stream(["The pump [", "S1", "] moves sodium", " out [S2]."])

    async def collect() -> list[Any]:
        return [piece async for piece in make_provider(fake_openai).stream_tutor_answer(QUESTION, PASSAGES, **OPTIONS)]

    pieces = asyncio.run(collect())
    final = pieces[-1]
    assert isinstance(final, TutorReply) and final.used_passages == PASSAGES
    text = "".join(piece for piece in pieces[:-1])
    assert text == final.answer
    assert all("[S" not in piece for piece in pieces[:-1]), "no raw marker is ever shown"
    assert text.startswith("The pump [Neurons and Signals, p. 2] moves sodium out [Neurons and Signals, p. 3].")
    assert text.rstrip().endswith("?"), "a guiding question is added when the model wrote none"
    body = fake_openai.requests_to("chat")[-1].body
    assert body["stream"] is True and "response_format" not in body
    assert "no JSON" in body["messages"][0]["content"]


def test_stream_failure_and_an_empty_stream_raise(fake_openai: FakeOpenAIServer) -> None:
    async def drain() -> None:
        async for _ in make_provider(fake_openai).stream_tutor_answer(QUESTION, PASSAGES, **OPTIONS):
            pass

    fake_openai.queue_error("chat", 503, headers={"x-should-retry": "false"})
    with pytest.raises(LLMError):
        asyncio.run(drain())
    fake_openai.queue_chat_stream([])
    with pytest.raises(LLMError, match="empty"):
        asyncio.run(drain())


def test_first_streamed_piece_arrives_before_the_model_finishes(fake_openai: FakeOpenAIServer) -> None:
    hold, finished = threading.Event(), threading.Event()
    fake_openai.queue_chat_stream(["First part. ", "Second part?"], hold_after_first=hold, finished=finished)

    async def first_then_rest() -> tuple[Any, list[Any]]:
        stream = make_provider(fake_openai).stream_tutor_answer(QUESTION, PASSAGES, **OPTIONS)
        first = await stream.__anext__()
        seen_finished = finished.is_set()
        hold.set()
        return (first, seen_finished), [piece async for piece in stream]

    try:
        (first, seen_finished), rest = asyncio.run(first_then_rest())
    finally:
        hold.set()
    assert first == "First part. " and seen_finished is False
    assert json.dumps(rest[-1].answer) and rest[-1].answer == "First part. Second part?"


def test_a_reader_that_leaves_mid_answer_gives_the_connection_back(fake_openai: FakeOpenAIServer) -> None:
    """A student who closes the page mid-answer ends the stream (the SSE generator is closed): the model's
    connection goes back to the pool then, not whenever the garbage collector gets to the response."""
    fake_openai.queue_chat_stream(["First part. ", "Second part?"])

    async def leave_after_the_first_piece() -> tuple[int, int]:
        provider = make_provider(fake_openai)
        stream = provider.stream_tutor_answer(QUESTION, PASSAGES, **OPTIONS)
        assert await stream.__anext__() == "First part. "
        pool = provider._async_client()._client._transport._pool
        taken = pool._slots._value
        await stream.aclose()
        return taken, pool._slots._value

    taken, after = asyncio.run(leave_after_the_first_piece())
    assert after == taken + 1  # the one slot the stream held is free again
