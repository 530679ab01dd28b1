"""Offline theory grading: `grade_theory_offline` (terms, sentence split, one embed call, scoring) against
the anchor of the raw `embed` call on exactly the texts the grader embeds, alternating rounds.

    python bench/bench_grading.py [--answers 12] [--rounds 5]

Goal: grading time <= 1.2x the embedding it needs (the rubric logic around the model costs little).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import alternate, median

POINTS = [
    "A thread is the smallest unit of execution that the operating system scheduler manages.",
    "Threads of one process share the heap but each thread has its own stack.",
    "A context switch saves the registers of one thread and restores those of another.",
]
QUESTION = {
    "type": "theory",
    "question": "Explain threads and context switches.",
    "model_answer": " ".join(POINTS),
    "rubric": POINTS,
    "source": {"document_id": "d", "page": 1, "title": "OS"},
}
ANSWERS = [
    "Threads are scheduled by the operating system. They share the heap. Each has a stack of its own.",
    "A context switch stores one thread's registers and loads another's. The scheduler manages threads.",
    "Bananas are yellow. I do not know about threads.",
    " ".join(POINTS),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from aiteacher.embeddings import LocalMiniLMEmbedder
    from aiteacher.exams.grading import grade_theory_offline
    from aiteacher.text import split_sentences, terms

    embedder = LocalMiniLMEmbedder()
    answers = [ANSWERS[i % len(ANSWERS)] + f" Note {i}." for i in range(args.answers)]
    texts = [[QUESTION["model_answer"], a, *POINTS, *[s for s in split_sentences(a) if terms(s)]] for a in answers]
    embedder.embed(texts[0])  # warm up

    def anchor() -> float:
        start = time.perf_counter()
        for batch in texts:
            embedder.embed(batch)
        return time.perf_counter() - start

    def subject() -> float:
        start = time.perf_counter()
        for answer in answers:
            grade_theory_offline(0, QUESTION, answer, embedder)
        return time.perf_counter() - start

    results = alternate(args.rounds, {"embed only (anchor)": anchor, "grade_theory_offline": subject})
    base, graded = median(results["embed only (anchor)"]), median(results["grade_theory_offline"])
    print(f"answers per round: {args.answers}, rounds: {args.rounds}")
    print(f"embed only (anchor):   {args.answers / base:7.1f} answers/s")
    print(f"grade_theory_offline:  {args.answers / graded:7.1f} answers/s")
    print(f"ratio grading/anchor time: {graded / base:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
