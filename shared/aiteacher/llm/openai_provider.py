"""The LLM provider for OpenAI or any OpenAI-compatible server (`OPENAI_BASE_URL`).

- The `openai` package is imported by the constructor, never at module import.
- Every request has an explicit timeout; the client retries 408/409/429/5xx and connection errors with
  exponential backoff (honouring `Retry-After`) up to `max_retries` times.
- Structured output: each request carries a strict JSON schema; the reply is validated with pydantic, a
  reply that fails validation gets ONE repair round trip (the error is sent back), then `LLMError`.
- Passages and other untrusted text are quoted data (see `aiteacher.llm.prompts`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from aiteacher.llm import prompts
from aiteacher.llm.base import (
    HINT_SOCRATIC,
    MCQ_OPTIONS,
    NO_SOURCES_ANSWER,
    ChatTurn,
    ExamItem,
    LearningState,
    LLMError,
    McqItem,
    ModerationResult,
    Passage,
    TheoryItem,
    TutorReply,
    check_counts,
    check_hint_level,
)
from aiteacher.llm.moderation import moderate_offline
from aiteacher.openai_client import build_async_client, build_client, endpoint_label

if TYPE_CHECKING:
    from aiteacher.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TURN_CHARS = 4000
MAX_LIST_ITEMS = 10
_MARKER = re.compile(r"\[(S\d+(?:\s*,\s*S\d+)*)\]")


# --- reply models (validation of the model's JSON) -------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _TutorOut(_Strict):
    answer: str = Field(min_length=1)
    citations: list[str]

    @field_validator("citations")
    @classmethod
    def _known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        ids = (info.context or {}).get("ids", ())
        unknown = [item for item in value if item not in ids]
        if unknown:
            raise ValueError(f"unknown source ids {unknown}; use only {list(ids)}")
        return value


class _Sourced(_Strict):
    """An item citing one of the request's sources (their ids travel in the validation context)."""

    source_id: str

    @field_validator("source_id")
    @classmethod
    def _known_source(cls, value: str, info: ValidationInfo) -> str:
        ids = (info.context or {}).get("ids", ())
        if value not in ids:
            raise ValueError(f"unknown source id {value!r}; use one of {list(ids)}")
        return value


class _McqOut(_Sourced):
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=MCQ_OPTIONS, max_length=MCQ_OPTIONS)
    answer_index: int = Field(ge=0, lt=MCQ_OPTIONS)
    explanation: str = Field(min_length=1)

    @field_validator("options")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        cleaned = [" ".join(option.split()) for option in value]
        if any(not option for option in cleaned):
            raise ValueError("options must not be empty")
        if len({option.casefold() for option in cleaned}) != len(cleaned):
            raise ValueError("options must be distinct (ignoring case)")
        return cleaned


class _TheoryOut(_Sourced):
    question: str = Field(min_length=1)
    model_answer: str = Field(min_length=1)
    rubric: list[str] = Field(min_length=1)

    @field_validator("rubric")
    @classmethod
    def _non_empty_points(cls, value: list[str]) -> list[str]:
        points = [point.strip() for point in value]
        if any(not point for point in points):
            raise ValueError("rubric points must not be empty")
        return points


class _ExamOut(_Strict):
    mcq: list[_McqOut]
    theory: list[_TheoryOut]


class _VerifyOut(_Strict):
    supported: bool
    reason: str


class _LearningOut(_Strict):
    topics: list[str]
    misconceptions: list[str]
    next_steps: list[str]


# --- the provider ----------------------------------------------------------------------------------
class OpenAIProvider:
    """Chat completions with strict JSON-schema output, one repair round, and the moderation endpoint."""

    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str = "",
        base_url: str = "",
        moderation_model: str = "omni-moderation-latest",
        timeout: float = 30.0,
        max_retries: int = 2,
        max_output_tokens: int = 2000,
        max_source_chars: int = 16000,
        max_history_turns: int = 8,
    ) -> None:
        if not model:
            raise LLMError("OPENAI_CHAT_MODEL is empty")
        if not api_key and not base_url:
            raise LLMError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server)"
            )
        if timeout <= 0 or max_retries < 0:
            raise ValueError("timeout must be positive and max_retries not negative")
        import openai

        self._openai = openai
        self.model = model
        self.moderation_model = moderation_model
        self.timeout = timeout
        self.max_output_tokens = max_output_tokens
        self.max_source_chars = max_source_chars
        self.max_history_turns = max_history_turns
        self.endpoint = endpoint_label(base_url)
        self._client = build_client(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._client_options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        # asyncio clients hold connections bound to one event loop: one client per loop.
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._moderation_endpoint_missing = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        return cls(
            model=settings.openai_chat_model,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            moderation_model=settings.openai_moderation_model,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            max_output_tokens=settings.openai_max_output_tokens,
            max_source_chars=settings.llm_max_source_chars,
            max_history_turns=settings.llm_max_history_turns,
        )

    def close(self) -> None:
        self._client.close()
        self._async_clients.clear()

    def _async_client(self) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = build_async_client(**self._client_options)
        return client

    # --- tutor -------------------------------------------------------------------------------------
    def tutor_answer(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn] | None = None,
        learning_state: LearningState | None = None,
        hint_level: int = HINT_SOCRATIC,
    ) -> TutorReply:
        check_hint_level(hint_level)
        if not passages:
            return TutorReply(answer=NO_SOURCES_ANSWER, used_passages=[])
        messages, ids, by_id = self._tutor_request(question, passages, history, learning_state, hint_level, False)
        reply = self._structured(messages, "tutor_answer", prompts.tutor_schema(ids), _tutor_parser(ids))
        return _tutor_reply(reply, by_id)

    async def tutor_answer_async(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn] | None = None,
        learning_state: LearningState | None = None,
        hint_level: int = HINT_SOCRATIC,
    ) -> TutorReply:
        check_hint_level(hint_level)
        if not passages:
            return TutorReply(answer=NO_SOURCES_ANSWER, used_passages=[])
        messages, ids, by_id = self._tutor_request(question, passages, history, learning_state, hint_level, False)
        reply = await self._structured_async(messages, "tutor_answer", prompts.tutor_schema(ids), _tutor_parser(ids))
        return _tutor_reply(reply, by_id)

    async def stream_tutor_answer(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn] | None = None,
        learning_state: LearningState | None = None,
        hint_level: int = HINT_SOCRATIC,
    ) -> AsyncIterator[str | TutorReply]:
        """A streamed completion in plain Markdown: `[S2]` markers become `[title, p. N]` as soon as they
        close (text after an unclosed `[` is held back), the used passages are the markers written."""
        check_hint_level(hint_level)
        if not passages:
            yield NO_SOURCES_ANSWER
            yield TutorReply(answer=NO_SOURCES_ANSWER, used_passages=[])
            return
        messages, _ids, by_id = self._tutor_request(question, passages, history, learning_state, hint_level, True)
        try:
            stream: Any = await self._async_client().chat.completions.create(
                model=self.model, messages=messages, stream=True, max_completion_tokens=self.max_output_tokens
            )
        except self._openai.OpenAIError as exc:
            raise self._error("tutor_answer", exc) from exc
        raw, sent = "", 0
        try:
            async for chunk in stream:
                choices = getattr(chunk, "choices", None) or []
                delta = getattr(choices[0].delta, "content", None) if choices else None
                if not delta:
                    continue
                raw += delta
                ready = _streamable_prefix(raw)
                readable = _MARKER.sub(lambda m: _label(m, by_id), raw[:ready])
                if len(readable) > sent:
                    yield readable[sent:]
                    sent = len(readable)
        except self._openai.OpenAIError as exc:
            raise self._error("tutor_answer", exc) from exc
        finally:  # a reader that left mid-answer: the connection goes back to the pool now, not at garbage collection
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        if not raw.strip():
            raise LLMError("The language model returned an empty answer")
        readable = _MARKER.sub(lambda m: _label(m, by_id), raw)
        if len(readable) > sent:
            yield readable[sent:]
        if "?" not in readable[-300:]:
            tail = f"\n\n{prompts.FALLBACK_GUIDING_QUESTION}"
            yield tail
            readable += tail
        yield TutorReply(answer=readable, used_passages=_cited(_MARKER.findall(raw), [], by_id))

    def _tutor_request(
        self,
        question: str,
        passages: list[Passage],
        history: list[ChatTurn] | None,
        learning_state: LearningState | None,
        hint_level: int,
        streaming: bool,
    ) -> tuple[list[dict[str, str]], list[str], dict[str, Passage]]:
        fitted = prompts.fit_passages(passages, self.max_source_chars)
        ids = [prompts.source_id(index) for index in range(len(fitted))]
        turns = [ChatTurn(turn.role, turn.content[:MAX_TURN_CHARS]) for turn in history or []]
        messages = prompts.tutor_messages(
            question,
            fitted,
            history=turns,
            learning_state=learning_state,
            hint_level=hint_level,
            max_history_turns=self.max_history_turns,
            streaming=streaming,
        )
        return messages, ids, dict(zip(ids, passages, strict=False))

    # --- exams -------------------------------------------------------------------------------------
    def exam_items(
        self,
        passages: list[Passage],
        *,
        num_mcq: int,
        num_theory: int,
        topic: str | None = None,
        difficulty: str | None = None,
        distractor_pool: list[str] | None = None,
    ) -> list[ExamItem]:
        """Items as the model wrote them (it may write fewer than asked; extra ones are dropped)."""
        check_counts(num_mcq, num_theory)
        if not passages or num_mcq + num_theory == 0:
            return []
        fitted = prompts.fit_passages(passages, self.max_source_chars)
        ids = [prompts.source_id(index) for index in range(len(fitted))]
        messages = prompts.exam_messages(
            fitted,
            num_mcq=num_mcq,
            num_theory=num_theory,
            topic=topic,
            difficulty=difficulty,
            distractor_pool=(distractor_pool or [])[:100],
        )
        out = self._structured(
            messages,
            "exam_items",
            prompts.exam_schema(ids),
            lambda raw: _ExamOut.model_validate_json(raw, context={"ids": ids}),
        )
        by_id = dict(zip(ids, passages, strict=False))
        items: list[ExamItem] = [
            McqItem(
                question=m.question,
                options=m.options,
                answer_index=m.answer_index,
                explanation=m.explanation,
                source=by_id[m.source_id],
            )
            for m in out.mcq[:num_mcq]
        ]
        items.extend(
            TheoryItem(question=t.question, model_answer=t.model_answer, rubric=t.rubric, source=by_id[t.source_id])
            for t in out.theory[:num_theory]
        )
        return items

    def verify_item(self, item: ExamItem) -> bool:
        """Ask the model whether the quoted source supports the key (structured yes/no)."""
        if isinstance(item, McqItem) and not _well_formed(item):
            return False
        verdict = self._structured(
            prompts.verify_messages(item), "item_verdict", prompts.VERIFY_SCHEMA, _VerifyOut.model_validate_json
        )
        return verdict.supported

    # --- learning state ----------------------------------------------------------------------------
    def summarize_learning_state(self, turns: list[ChatTurn], previous: LearningState | None) -> LearningState:
        recent = [ChatTurn(turn.role, turn.content[:MAX_TURN_CHARS]) for turn in turns[-40:]]
        out = self._structured(
            prompts.learning_messages(recent, previous, MAX_LIST_ITEMS),
            "learning_state",
            prompts.LEARNING_SCHEMA,
            _LearningOut.model_validate_json,
        )

        def clean(values: Sequence[str]) -> list[str]:
            return [" ".join(value.split()) for value in values if value.strip()][:MAX_LIST_ITEMS]

        return LearningState(
            topics=clean(out.topics),
            misconceptions=clean(out.misconceptions),
            next_steps=clean(out.next_steps),
            version=(previous.version if previous else 0) + 1,
        )

    # --- moderation --------------------------------------------------------------------------------
    def moderate(self, text: str) -> ModerationResult:
        """The moderation endpoint's verdict; a server without one (404) gets the offline word list."""
        if not text.strip():
            return ModerationResult(flagged=False, categories=[])
        if self._moderation_endpoint_missing:
            return moderate_offline(text)
        try:
            response: Any = self._client.moderations.create(model=self.moderation_model, input=text)
        except self._openai.NotFoundError:
            return self._no_moderation_endpoint(text)
        except self._openai.OpenAIError as exc:
            raise self._error("moderation", exc) from exc
        return _moderation_verdict(response)

    async def moderate_async(self, text: str) -> ModerationResult:
        if not text.strip():
            return ModerationResult(flagged=False, categories=[])
        if self._moderation_endpoint_missing:
            return moderate_offline(text)
        try:
            raw = await self._post_async("/moderations", {"model": self.moderation_model, "input": text})
        except self._openai.NotFoundError:
            return self._no_moderation_endpoint(text)
        except self._openai.OpenAIError as exc:
            raise self._error("moderation", exc) from exc
        results = raw.get("results") or []
        if not results or not isinstance(results[0], dict):
            raise LLMError("The moderation service returned no result")
        names = sorted(name for name, value in (results[0].get("categories") or {}).items() if value is True)
        return ModerationResult(flagged=bool(results[0].get("flagged")) or bool(names), categories=names)

    async def _post_async(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A request through the SDK's own retries, timeout and auth, but with the JSON body sent as it is and
        the reply read as plain JSON (the documented `cast_to=httpx.Response` form): the SDK's request transform
        and response models cost more CPU than the rest of a tutor turn together (bench_chat_capacity.py)."""
        import httpx

        response = await self._async_client().post(path, body=body, cast_to=httpx.Response)
        try:
            payload = response.json()
        except ValueError as exc:
            raise LLMError("The language model server returned invalid JSON") from exc
        if not isinstance(payload, dict):
            raise LLMError("The language model server returned an unexpected reply")
        return payload

    def _no_moderation_endpoint(self, text: str) -> ModerationResult:
        with self._lock:
            if not self._moderation_endpoint_missing:
                log.warning("%s has no moderation endpoint; using the offline word list", self.endpoint)
            self._moderation_endpoint_missing = True
        return moderate_offline(text)

    # --- plumbing ----------------------------------------------------------------------------------
    async def _structured_async(
        self, messages: list[dict[str, str]], name: str, schema: dict[str, Any], parse: Callable[[str], T]
    ) -> T:
        """`_structured` on the asyncio client: one repair round trip, then `LLMError`."""
        response_format = {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}

        async def complete(request: list[dict[str, str]]) -> str:
            return await self._complete_async(request, response_format, name)

        return await _parse_with_repair(messages, complete, parse, name, self.endpoint)

    async def _complete_async(self, messages: list[dict[str, str]], response_format: dict[str, Any], name: str) -> str:
        try:
            raw = await self._post_async(
                "/chat/completions",
                {
                    "model": self.model,
                    "messages": messages,
                    "response_format": response_format,
                    "max_completion_tokens": self.max_output_tokens,
                },
            )
        except self._openai.OpenAIError as exc:
            raise self._error(name, exc) from exc
        choices = raw.get("choices") or []
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            raise LLMError("The language model returned no choices")
        if message.get("refusal"):
            raise LLMError("The language model refused the request")
        return str(message.get("content") or "")

    def _structured(
        self, messages: list[dict[str, str]], name: str, schema: dict[str, Any], parse: Callable[[str], T]
    ) -> T:
        """One structured request; an invalid reply gets one repair round trip, then `LLMError`."""
        response_format = {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
        raw = self._complete(messages, response_format, name)
        try:
            return parse(raw)
        except (ValidationError, ValueError) as exc:
            problem = _describe(exc)
        log.warning("%s returned invalid %s (%s); asking for a repair", self.endpoint, name, problem)
        repair = [
            *messages,
            {"role": "assistant", "content": raw},
            {"role": "user", "content": prompts.REPAIR_PROMPT.format(error=problem)},
        ]
        raw = self._complete(repair, response_format, name)
        try:
            return parse(raw)
        except (ValidationError, ValueError) as exc:
            raise LLMError(
                f"The language model returned invalid {name.replace('_', ' ')} twice: {_describe(exc)}"
            ) from exc

    def _complete(self, messages: list[dict[str, str]], response_format: dict[str, Any], name: str) -> str:
        from aiteacher import observability as obs

        try:
            with obs.timed(obs.LLM_LATENCY, "openai", name):
                response: Any = self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    response_format=response_format,
                    max_completion_tokens=self.max_output_tokens,
                )
        except self._openai.OpenAIError as exc:
            raise self._error(name, exc) from exc
        obs.llm_usage("openai", getattr(response, "usage", None))
        return _content(response)

    def _error(self, what: str, exc: Exception) -> LLMError:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            detail = f"The language model did not answer within {self.timeout:g} s"
        elif isinstance(exc, openai.APIConnectionError):
            detail = "The language model server could not be reached"
        elif isinstance(exc, openai.RateLimitError):
            detail = "The language model is rate limited; retries were exhausted"
        elif isinstance(exc, openai.APIStatusError):
            detail = f"The language model request failed with HTTP {exc.status_code}"
        else:
            detail = "The language model request failed"
        log.warning("%s request to %s failed: %s", what, self.endpoint, exc)
        return LLMError(detail)


def _content(response: Any) -> str:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise LLMError("The language model returned no choices")
    message = choices[0].message
    if getattr(message, "refusal", None):
        raise LLMError("The language model refused the request")
    return message.content or ""


def _moderation_verdict(response: Any) -> ModerationResult:
    results = getattr(response, "results", None) or []
    if not results:
        raise LLMError("The moderation service returned no result")
    result = results[0]
    categories = getattr(result, "categories", None)
    flags = categories.to_dict() if categories is not None and hasattr(categories, "to_dict") else {}
    names = sorted(name for name, value in flags.items() if value is True)
    return ModerationResult(flagged=bool(getattr(result, "flagged", False)) or bool(names), categories=names)


async def _parse_with_repair(
    messages: list[dict[str, str]],
    complete: Callable[[list[dict[str, str]]], Awaitable[str]],
    parse: Callable[[str], T],
    name: str,
    endpoint: str,
) -> T:
    raw = await complete(messages)
    try:
        return parse(raw)
    except (ValidationError, ValueError) as exc:
        problem = _describe(exc)
    log.warning("%s returned invalid %s (%s); asking for a repair", endpoint, name, problem)
    repair = [
        *messages,
        {"role": "assistant", "content": raw},
        {"role": "user", "content": prompts.REPAIR_PROMPT.format(error=problem)},
    ]
    raw = await complete(repair)
    try:
        return parse(raw)
    except (ValidationError, ValueError) as exc:
        raise LLMError(f"The language model returned invalid {name.replace('_', ' ')} twice: {_describe(exc)}") from exc


def _cited(markers: list[str], listed: list[str], by_id: dict[str, Passage]) -> list[Passage]:
    """The passages named by the answer's markers (in order), then by the listed citations."""
    order: list[str] = []
    for marker in markers:
        order.extend(part.strip() for part in marker.split(","))
    order.extend(listed)
    used: list[Passage] = []
    for cited in order:
        passage = by_id.get(cited)
        if passage is not None and passage not in used:
            used.append(passage)
    return used


def _streamable_prefix(raw: str) -> int:
    """How much of a partial answer can be shown: all of it unless a `[` is still open."""
    opening = raw.rfind("[")
    return len(raw) if opening < 0 or "]" in raw[opening:] else opening


def _label(match: re.Match[str], by_id: dict[str, Passage]) -> str:
    labels = [
        f"{passage.title}, p. {passage.page}"
        for part in match.group(1).split(",")
        if (passage := by_id.get(part.strip())) is not None
    ]
    return f"[{'; '.join(labels)}]" if labels else ""


def _well_formed(item: McqItem) -> bool:
    options = [option.strip().casefold() for option in item.options]
    return (
        len(options) == MCQ_OPTIONS
        and all(options)
        and len(set(options)) == MCQ_OPTIONS
        and 0 <= item.answer_index < MCQ_OPTIONS
    )


def _describe(exc: Exception) -> str:
    """A short, model-readable account of what was wrong with a reply (no input values echoed)."""
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors(include_url=False, include_input=False)[:10]:
            location = ".".join(str(part) for part in error["loc"]) or "reply"
            problems.append(f"{location}: {error['msg']}")
        text = "; ".join(problems)
    elif isinstance(exc, json.JSONDecodeError):
        text = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    else:
        text = str(exc)
    return text[:1000]


def _readable_citations(answer: str, by_id: dict[str, Passage]) -> str:
    """`[S2]` markers become `[title, p. N]`; markers naming no given source are dropped."""

    def replace(match: re.Match[str]) -> str:
        labels = []
        for part in match.group(1).split(","):
            passage = by_id.get(part.strip())
            if passage is not None:
                labels.append(f"{passage.title}, p. {passage.page}")
        return f"[{'; '.join(labels)}]" if labels else ""

    text = _MARKER.sub(replace, answer)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text).strip()
    if "?" not in text[-300:]:
        text = f"{text}\n\n{prompts.FALLBACK_GUIDING_QUESTION}"
    return text


def _tutor_parser(ids: list[str]) -> Callable[[str], _TutorOut]:
    """The structured answer's parser, its citations checked against this request's source ids."""
    return lambda raw: _TutorOut.model_validate_json(raw, context={"ids": ids})


def _tutor_reply(reply: _TutorOut, by_id: dict[str, Passage]) -> TutorReply:
    """The answer with readable citations and the passages it actually used."""
    used = _cited(_MARKER.findall(reply.answer), reply.citations, by_id)
    return TutorReply(answer=_readable_citations(reply.answer, by_id), used_passages=used)
