"""Grading: MCQs at once, theory answers against their rubric (offline coverage score or an LLM verdict).

The offline grader is transparent and reproducible: for each rubric point it reports the share of the
point's key terms that the answer uses and the best cosine similarity between the point and one sentence
of the answer (local embedder); the point counts as met when their mean reaches `POINT_MET` and the
closest sentence does not flip the point's polarity (a "not"/"never" on one side only). The same answer
always gets the same grade: no randomness, fixed rounding, fixed thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Similarity below this earns nothing; the span up to SIM_FULL maps linearly onto 0..1.
SIM_FLOOR, SIM_FULL = 0.35, 0.85
POINT_MET = 0.6
NEGATIONS = frozenset({"not", "no", "never", "none", "cannot", "neither", "nor", "nothing"})
MAX_ANSWER_SENTENCES = 60


def source_of(question: dict[str, Any]) -> dict[str, Any]:
    from aiteacher.exams.service import page_url

    source = dict(question.get("source") or {})
    if source.get("document_id") and source.get("page"):
        source["page_url"] = page_url(source["document_id"], source["page"])
    return source


def _where(source: dict[str, Any]) -> str:
    title = source.get("title") or "the course material"
    return f"“{title}”, p. {source.get('page')}" if source.get("page") else f"“{title}”"


def grade_mcq(index: int, question: dict[str, Any], answer: dict[str, Any] | None) -> dict[str, Any]:
    chosen = None if answer is None else answer.get("choice")
    key = question["answer_index"]
    options = question["options"]
    correct = chosen == key
    source = source_of(question)
    if chosen is None:
        right, missing = [], [f"No option chosen. The answer is “{options[key]}”."]
    elif correct:
        right, missing = [f"“{options[key]}” is correct."], []
    else:
        right, missing = [], [f"“{options[chosen]}” is not correct; the answer is “{options[key]}”."]
    return {
        "index": index,
        "type": "mcq",
        "status": "graded",
        "score": 1.0 if correct else 0.0,
        "max_score": 1.0,
        "correct": correct,
        "chosen_index": chosen,
        "answer_index": key,
        "feedback": {
            "right": right,
            "missing": missing,
            "explanation": question.get("explanation", ""),
            "review": f"Review {_where(source)}.",
        },
        "source": source,
    }


def pending_theory(index: int, question: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "type": "theory",
        "status": "pending",
        "score": None,
        "max_score": 1.0,
        "source": source_of(question),
    }


def _theory_result(
    index: int, question: dict[str, Any], points: list[dict[str, Any]], grader: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    met = sum(1 for point in points if point["met"])
    score = round(met / len(points), 4) if points else 0.0
    source = source_of(question)
    right = [
        f"You covered: {p['point']}" + (f" (“{p['quote']}”)" if p.get("quote") else "") for p in points if p["met"]
    ]
    missing = [
        (
            f"Your answer seems to contradict: {p['point']}"
            if p.get("polarity_mismatch")
            else f"Missing or unclear: {p['point']}"
        )
        for p in points
        if not p["met"]
    ]
    return {
        "index": index,
        "type": "theory",
        "status": "graded",
        "score": score,
        "max_score": 1.0,
        "correct": score >= 0.999,
        "grader": grader,
        "points": points,
        "model_answer": question["model_answer"],
        "feedback": {"right": right, "missing": missing, "review": f"Review {_where(source)}."},
        "source": source,
        **(extra or {}),
    }


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the embedder's vectors are L2-normalized


def grade_theory_offline(
    index: int, question: dict[str, Any], answer_text: str | None, embedder: Any
) -> dict[str, Any]:
    """Rubric coverage: key terms of each point found in the answer, and semantic similarity of the point
    to the closest sentence of the answer; a point is met when their mean is at least `POINT_MET`."""
    from aiteacher.text import normalize_space, split_sentences, terms

    rubric = [str(point) for point in question.get("rubric") or []]
    text = normalize_space(answer_text or "")
    answer_terms = set(terms(text))
    if not answer_terms:
        points = [{"point": point, "met": False, "quote": "", "key_terms": 0.0, "similarity": 0.0} for point in rubric]
        return _theory_result(index, question, points, "offline", {"similarity_to_model_answer": 0.0})
    sentences = [s for s in split_sentences(text) if terms(s)][:MAX_ANSWER_SENTENCES] or [text]
    vectors = embedder.embed([question["model_answer"], text, *rubric, *sentences])
    model_vec, answer_vec = vectors[0], vectors[1]
    point_vecs, sentence_vecs = vectors[2 : 2 + len(rubric)], vectors[2 + len(rubric) :]
    points = []
    for point, point_vec in zip(rubric, point_vecs, strict=True):
        key = set(terms(point))
        coverage = round(len(key & answer_terms) / len(key), 3) if key else 0.0
        similarities = [round(_cosine(point_vec, vec), 3) for vec in sentence_vecs]
        best = max(range(len(similarities)), key=lambda i: (similarities[i], -i))
        similarity = similarities[best]
        semantic = min(1.0, max(0.0, (similarity - SIM_FLOOR) / (SIM_FULL - SIM_FLOOR)))
        point_score = round((coverage + semantic) / 2, 3)
        contradicts = _negated(point) != _negated(sentences[best])
        met = point_score >= POINT_MET and not contradicts
        points.append(
            {
                "point": point,
                "met": met,
                "quote": sentences[best] if met else "",
                "key_terms": coverage,
                "similarity": similarity,
                "point_score": point_score,
                "polarity_mismatch": contradicts,
            }
        )
    overall = round(_cosine(model_vec, answer_vec), 3)
    return _theory_result(index, question, points, "offline", {"similarity_to_model_answer": overall})


def _negated(text: str) -> bool:
    from aiteacher.text import tokens

    return any(token in NEGATIONS or token.endswith("n't") for token in tokens(text))


def grade_theory_llm(index: int, question: dict[str, Any], answer_text: str | None, provider: Any) -> dict[str, Any]:
    """One strict JSON verdict per rubric point, each met point with a verbatim quote from the answer."""
    from aiteacher.exams.grading_prompts import rubric_verdicts

    rubric = [str(point) for point in question.get("rubric") or []]
    text = (answer_text or "").strip()
    if not text:
        points = [{"point": point, "met": False, "quote": "", "comment": "No answer given."} for point in rubric]
        return _theory_result(index, question, points, "llm")
    verdicts = rubric_verdicts(provider, question["question"], rubric, text)
    points = [
        {
            "point": point,
            "met": verdict["met"],
            "quote": verdict["quote"] if verdict["met"] else "",
            "comment": verdict["comment"],
        }
        for point, verdict in zip(rubric, verdicts, strict=True)
    ]
    return _theory_result(index, question, points, "llm")


def total(results: list[dict[str, Any]]) -> tuple[float, float]:
    score = round(sum(r["score"] or 0.0 for r in results), 4)
    return score, float(sum(r["max_score"] for r in results))
