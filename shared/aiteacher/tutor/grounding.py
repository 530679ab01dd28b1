"""The grounding gate: which retrieved passages the tutor may answer from.

A fixed score cutoff cannot tell "the material answers this" from "the material is about something
similar": over many similar documents an unanswerable question still scores 0.3-0.4 against the
nearest chunk. The gate combines three signals of each retrieved passage, calibrated on a labelled
set of answerable and unanswerable questions (bench/bench_grounding.py, docs/tutor.md):

- `score`: the search score (cosine similarity of the query and the chunk);
- `overlap`: the share of the question's topic words (stemmed, stop and question words removed) that the
  passage contains;
- `margin`: how far the passage's score stands above the median of the other results.

A passage is kept when its score clears a floor and either its overlap is high enough or its score is high
enough on its own (a paraphrase with no shared words); the best passage must also stand out by the margin.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from aiteacher.llm.text import QUESTION_WORDS
from aiteacher.text import stem, terms

if TYPE_CHECKING:
    from aiteacher.config import Settings
    from aiteacher.curriculum.search import SearchHit

_QUESTION_STEMS = frozenset(stem(word) for word in QUESTION_WORDS)


@dataclass(frozen=True)
class GateSettings:
    min_score: float
    confident_score: float
    min_overlap: float
    min_margin: float

    @classmethod
    def from_settings(cls, settings: Settings) -> GateSettings:
        return cls(
            settings.tutor_min_score,
            settings.tutor_confident_score,
            settings.tutor_min_overlap,
            settings.tutor_min_margin,
        )


@dataclass(frozen=True)
class Signals:
    score: float
    overlap: float
    margin: float


def topic_stems(text: str) -> set[str]:
    return set(terms(text)) - _QUESTION_STEMS


def signals(question: str, results: list[SearchHit]) -> list[Signals]:
    """The gate's inputs for each result, in the results' order."""
    wanted = topic_stems(question)
    scores = [result.score for result in results]
    out = []
    for index, result in enumerate(results):
        others = scores[:index] + scores[index + 1 :]
        margin = scores[index] - statistics.median(others) if others else scores[index]
        found = wanted & _stems(f"{result.title} {result.text}")
        overlap = len(found) / len(wanted) if wanted else 0.0
        out.append(Signals(scores[index], overlap, margin))
    return out


@lru_cache(maxsize=4096)
def _stems(text: str) -> frozenset[str]:
    # The same chunks come back turn after turn: stem each one once per process.
    return frozenset(terms(text))


def passes(signal: Signals, gate: GateSettings) -> bool:
    if signal.score < gate.min_score:
        return False
    return signal.overlap >= gate.min_overlap or signal.score >= gate.confident_score


def grounded(question: str, results: list[SearchHit], gate: GateSettings) -> list[SearchHit]:
    """The results the tutor may answer from, best first (empty: the material does not cover it)."""
    if not results:
        return []
    measured = signals(question, results)
    best = max(range(len(results)), key=lambda index: (passes(measured[index], gate), measured[index].score))
    if not passes(measured[best], gate) or measured[best].margin < gate.min_margin:
        return []
    kept = [result for result, signal in zip(results, measured, strict=True) if passes(signal, gate)]
    return sorted(kept, key=lambda result: result.score, reverse=True)
