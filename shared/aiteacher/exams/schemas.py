"""The exams domain's request and reply models (pydantic only: cheap to import in a handler)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aiteacher.bounds import MAX_ID
from aiteacher.replies import Reply

Weight = int


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: int = Field(ge=0, le=1000, description="0-based index of the question in the exam")
    choice: int | None = Field(None, ge=0, le=9, description="MCQ: 0-based index of the chosen option")
    text: str | None = Field(None, max_length=10_000, description="Theory: the written answer")


class Answers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: list[Answer] = Field(default_factory=list, max_length=200)


class SourceRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_id: str = Field(min_length=1, max_length=36)
    first_page: int | None = Field(None, ge=1, le=100_000)
    last_page: int | None = Field(None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> SourceRange:
        if self.first_page and self.last_page and self.first_page > self.last_page:
            raise ValueError("first_page must not be after last_page")
        return self


class Blueprint(BaseModel):
    """Weights (non-negative integers, any scale) for the difficulty mix and the Bloom levels, and the
    documents or page ranges to cover. Every part is optional."""

    model_config = ConfigDict(extra="forbid")
    difficulty: dict[Literal["easy", "medium", "hard"], Weight] | None = None
    bloom: dict[Literal["remember", "understand", "apply", "analyse"], Weight] | None = None
    sources: list[SourceRange] | None = Field(None, max_length=20)

    @model_validator(mode="after")
    def _weights(self) -> Blueprint:
        for name in ("difficulty", "bloom"):
            weights = getattr(self, name)
            if weights is not None:
                if any(value < 0 or value > 1000 for value in weights.values()):
                    raise ValueError(f"{name} weights must be between 0 and 1000")
                if not any(weights.values()):
                    raise ValueError(f"{name} weights must not all be zero")
        return self


# --- requests and replies of the exam-generate and exam functions ----------------------------------


class ExamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_mcq: int = Field(ge=0, le=100)
    num_theory: int = Field(ge=0, le=50)
    course: str | None = Field(None, max_length=100)
    topic: str | None = Field(None, max_length=200)
    difficulty: Literal["easy", "medium", "hard"] | None = None
    semester_id: int | None = Field(None, ge=1, le=MAX_ID, description="Academics and admins")
    faculty_id: int | None = Field(None, ge=1, le=MAX_ID, description="Admins")
    blueprint: Blueprint | None = Field(None, description="Difficulty mix, Bloom levels, documents or page ranges")


class ExamAccepted(Reply):
    exam_id: str
    status: str


class QuestionOut(Reply):
    """One exam item; its keys (`answer_index`, `explanation`, `model_answer`, `rubric`) only when visible."""

    type: str = Field(description="mcq | theory")
    question: str


class ExamOut(Reply):
    id: str
    status: str
    questions: list[QuestionOut]


class ExamSummary(Reply):
    id: str
    status: str
    kind: str = Field(description="practice (a student's own) | course")


class ExamPage(Reply):
    exams: list[ExamSummary] = Field(description="The caller's exams and their tenant's course exams, newest first")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page")


class AttemptSummary(Reply):
    id: str
    exam_id: str
    status: str = Field(description="in_progress | grading | graded")


class AttemptList(Reply):
    attempts: list[AttemptSummary] = Field(description="The caller's attempts at this exam, newest first")


class SavedAnswer(Reply):
    """`{question, choice}` for an MCQ, `{question, text}` for a theory item."""

    question: int


class ItemResult(Reply):
    index: int


class AttemptOut(AttemptSummary):
    questions: list[QuestionOut]
    answers: list[SavedAnswer]
    items: list[ItemResult] = Field(description="Per-question results once the attempt is submitted")


class ScoreBucket(Reply):
    from_percent: int
    to_percent: int
    attempts: int


class ItemStatistics(Reply):
    index: int
    type: str
    question: str
    answered: int
    share_correct: float | None


class ExamStatistics(Reply):
    exam_id: str
    attempts: int
    students: int
    mean_percent: float | None
    score_distribution: list[ScoreBucket]
    items: list[ItemStatistics]
