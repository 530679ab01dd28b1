"""The LLM interface, its data types and its error (no heavy imports here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from aiteacher.enums import HintLevel
from aiteacher.errors import ServiceUnavailable

#: Hint ladder of the tutor: 0 a Socratic hint, 1 a stronger hint, 2 a worked explanation (`HintLevel`).
HINT_SOCRATIC, HINT_STRONG, HINT_WORKED = HintLevel.SOCRATIC, HintLevel.STRONG, HintLevel.WORKED
HINT_LEVELS: tuple[int, ...] = tuple(HintLevel)
MCQ_OPTIONS = 4
#: The tutor's reply when it is given no passages (callers normally refuse before asking).
NO_SOURCES_ANSWER = (
    "I could not find this in your course material. Which lecture or topic does your question come from?"
)


class LLMError(ServiceUnavailable):
    """The language model could not produce a usable answer (unreachable, timed out, invalid output twice).

    Maps to a 503 problem with `Retry-After`; the detail never carries prompts, keys or model output.
    """

    code, title = "llm_unavailable", "The AI service is temporarily unavailable"


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk of course material, as the LLM layer sees it."""

    chunk_id: str
    document_id: str
    title: str
    page: int
    text: str
    score: float = 0.0
    course: str | None = None
    unit: str = "page"
    """What `page` counts: a PDF page, a slide or a section."""
    ocr: bool = False
    """The text was recognised from a scanned page."""


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class LearningState:
    """What a student has been working on, summarised from their chat turns; `version` counts summaries."""

    topics: list[str] = field(default_factory=list)
    misconceptions: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    version: int = 0


@dataclass(frozen=True, slots=True)
class TutorReply:
    answer: str
    used_passages: list[Passage]
    """The passages the answer actually draws on: these are its citations."""


@dataclass(frozen=True, slots=True)
class McqItem:
    question: str
    options: list[str]
    answer_index: int
    explanation: str
    source: Passage

    @property
    def answer(self) -> str:
        return self.options[self.answer_index]


@dataclass(frozen=True, slots=True)
class TheoryItem:
    question: str
    model_answer: str
    rubric: list[str]
    source: Passage


ExamItem = McqItem | TheoryItem


@dataclass(frozen=True, slots=True)
class ModerationResult:
    flagged: bool
    categories: list[str] = field(default_factory=list)


@runtime_checkable
class LLMProvider(Protocol):
    """What the tutor, the exam generator and the chat summariser need from a language model.

    The plain methods are synchronous and thread-safe (jobs); the `_async` ones and `stream_tutor_answer`
    serve the chat function's event loop. Callers have already checked relevance and
    integrity; a provider answers only from the passages it is given.
    """

    name: str

    def tutor_answer(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn],
        learning_state: LearningState | None,
        hint_level: int,
    ) -> TutorReply:
        """Guide the student (hint level 0, 1 or 2) from the passages, ending with a guiding question."""
        ...

    def exam_items(
        self,
        passages: list[Passage],
        *,
        num_mcq: int,
        num_theory: int,
        topic: str | None,
        difficulty: str | None,
        distractor_pool: list[str],
    ) -> list[ExamItem]:
        """Up to `num_mcq` MCQs then up to `num_theory` theory items, each citing its source passage."""
        ...

    def verify_item(self, item: ExamItem) -> bool:
        """Whether the item's key is supported by the text of its cited source."""
        ...

    def summarize_learning_state(self, turns: list[ChatTurn], previous: LearningState | None) -> LearningState:
        """The learning state after `turns`, building on `previous` (version incremented)."""
        ...

    def moderate(self, text: str) -> ModerationResult:
        """Whether the text is harmful (violence, self-harm, harassment, sexual content, ...)."""
        ...

    # --- asyncio twins for the request path (the chat function waits on the model without a thread) ---
    async def tutor_answer_async(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn],
        learning_state: LearningState | None,
        hint_level: int,
    ) -> TutorReply:
        """`tutor_answer` without blocking the event loop."""
        ...

    def stream_tutor_answer(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn],
        learning_state: LearningState | None,
        hint_level: int,
    ) -> AsyncIterator[str | TutorReply]:
        """The answer as it is written: text deltas (`str`), then one final `TutorReply` (the whole answer
        and the passages it used)."""
        ...

    async def moderate_async(self, text: str) -> ModerationResult:
        """`moderate` without blocking the event loop."""
        ...


def check_hint_level(hint_level: int) -> int:
    if hint_level not in HINT_LEVELS:
        raise ValueError(f"hint_level must be one of {HINT_LEVELS}, not {hint_level!r}")
    return hint_level


def check_counts(num_mcq: int, num_theory: int) -> None:
    if num_mcq < 0 or num_theory < 0:
        raise ValueError("num_mcq and num_theory must not be negative")
