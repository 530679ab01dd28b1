"""Request bodies of the exam functions (pydantic only: cheap to import in a handler)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
