"""Benchmark: retrieval quality on the eval set (../shared/eval), end to end through the real pipeline.

    python bench/bench_retrieval.py [--top-k 5] [--no-baseline] [--eval-dir ../shared/eval] [--json]

The three textbook PDFs and canary.pdf are uploaded through the `ingest` function into one tenant (an academic
of the first demo faculty, semester 1) and ingested by the RQ job; then each of the 30 questions of
questions.json goes to the `search` function (top_k=5) as a student of that tenant. A hit is a result from
the right PDF (document_id -> file name from the upload replies) whose page is the gold page. Reported per PDF
and overall: hit@1, hit@5, MRR (over the top 5), and, for information, how often an answer keyword appears in
the top-5 texts.

Anchor in the same run (unless --no-baseline): the eval README's "straightforward pipeline" rebuilt
in-process: raw pypdf text per page, fixed 1,000-character windows with 200 overlap inside a page, the same
embedder, exact cosine over all the eval PDFs' chunks. The README reports hit@1 30/30 and hit@5 30/30 for it.
Goal: hit@5 >= 0.85 with the offline embedder (and not below the baseline).

Canary isolation: a student of another faculty, and one of another semester of the same faculty, search the
canary phrases (top_k=50) and must get no canary result; the tenant's own student should find phrase i on
page i. This set is a benchmark, not a tuning target.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from common import print_table
from rag_env import EVAL_DIR, RagEnv

GOAL_HIT5 = 0.85
README_BASELINE = {"hit@1": 30 / 30, "hit@5": 30 / 30}
CANARY_WORDS = ("zibbelquartz", "vantrosk", "moonwick")


def rank_of(results: list[dict[str, Any]], names: dict[str, str], pdf: str, page: int) -> int | None:
    for rank, result in enumerate(results, start=1):
        if names.get(result["document_id"]) == pdf and int(result["page"]) == page:
            return rank
    return None


def score(ranks: list[int | None], top_k: int) -> dict[str, float]:
    n = len(ranks)
    return {
        "n": n,
        "hit@1": sum(r == 1 for r in ranks) / n,
        f"hit@{top_k}": sum(r is not None and r <= top_k for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
    }


def baseline_ranks(
    eval_dir: Path, pdfs: list[str], questions: list[dict[str, Any]], top_k: int
) -> tuple[list[int | None], int]:
    """The README's straightforward pipeline, in-process: pypdf text, fixed 1000/200 windows, exact cosine."""
    import numpy as np
    from pypdf import PdfReader

    from aiteacher.embeddings import get_embedder

    chunks: list[tuple[str, int, str]] = []
    for name in pdfs:
        reader = PdfReader(io.BytesIO((eval_dir / name).read_bytes()))
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            for start in range(0, max(len(text) - 200, 1), 800):
                window = text[start : start + 1000]
                if window.strip():
                    chunks.append((name, number, window))
    embedder = get_embedder()
    matrix = np.asarray(embedder.embed([text for _, _, text in chunks]), dtype=np.float32)
    ranks: list[int | None] = []
    for question in questions:
        query = np.asarray(embedder.embed_query(question["question"]), dtype=np.float32)
        order = np.argsort(-(matrix @ query))[:top_k]
        found = None
        for rank, index in enumerate(order, start=1):
            if chunks[index][0] == question["pdf"] and chunks[index][1] == question["page"]:
                found = rank
                break
        ranks.append(found)
    return ranks, len(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process straightforward baseline")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    say = (lambda *a, **k: None) if args.json else print
    began = time.perf_counter()
    top_k = args.top_k

    questions_path, canary_path = args.eval_dir / "questions.json", args.eval_dir / "canary.json"
    if not questions_path.is_file() or not canary_path.is_file():
        print(f"skipped: the eval set is not at {args.eval_dir} (questions.json, canary.json and the PDFs)")
        print(json.dumps({"bench": "retrieval", "skipped": True, "eval_dir": str(args.eval_dir)}))
        return 0
    questions = json.loads(questions_path.read_text())
    canary = json.loads(canary_path.read_text())
    pdfs = sorted({q["pdf"] for q in questions})
    missing = [name for name in (*pdfs, canary["pdf"]) if not (args.eval_dir / name).is_file()]
    if missing:
        print(f"skipped: eval PDFs missing in {args.eval_dir}: {', '.join(missing)}")
        print(json.dumps({"bench": "retrieval", "skipped": True, "missing": missing}))
        return 0

    with RagEnv(prefix="bench-retrieval-") as env:
        names: dict[str, str] = {}
        t0 = time.perf_counter()
        for name in (*pdfs, canary["pdf"]):
            accepted = env.upload((args.eval_dir / name).read_bytes(), name, course="eval")
            names[accepted["document_id"]] = name
        env.run_jobs()
        ingest_s = time.perf_counter() - t0
        documents = {names[doc_id]: env.document(doc_id) for doc_id in names}
        not_ready = {name: doc["status"] for name, doc in documents.items() if doc["status"] != "ready"}
        if not_ready:
            raise SystemExit(f"ingestion failed: {not_ready}")
        say(
            f"ingested {len(documents)} PDFs in {ingest_s:.1f} s: "
            + ", ".join(f"{name} ({doc['pages']} p, {doc['chunks']} chunks)" for name, doc in documents.items())
        )

        student = env.student
        assert student is not None and env.outsider is not None
        ranks: list[int | None] = []
        keyword_hits: list[bool] = []
        misses: list[dict[str, Any]] = []
        search_ms: list[float] = []
        for question in questions:
            t = time.perf_counter()
            results, _ = env.search(student, question["question"], top_k=top_k)
            search_ms.append((time.perf_counter() - t) * 1000)
            rank = rank_of(results, names, question["pdf"], question["page"])
            ranks.append(rank)
            texts = " ".join(r["text"] for r in results).lower()
            keyword_hits.append(any(k.lower() in texts for k in question["answer_keywords"]))
            if rank != 1:
                misses.append(
                    {
                        "pdf": question["pdf"],
                        "page": question["page"],
                        "question": question["question"],
                        "rank": rank,
                        "got": [(names.get(r["document_id"], "?"), r["page"], r["score"]) for r in results],
                    }
                )

        # Canary isolation: other tenants never retrieve it; its own tenant does.
        canary_id = next(doc_id for doc_id, name in names.items() if name == canary["pdf"])
        same_faculty_other_semester = env.new_user("student", env.faculties[0], 2)
        leaks: list[dict[str, Any]] = []
        own_found = []
        for number, phrase in enumerate(canary["phrases"], start=1):
            for who, user in (("other faculty", env.outsider), ("other semester", same_faculty_other_semester)):
                results, _ = env.search(user, phrase, top_k=50)
                for result in results:
                    if result["document_id"] == canary_id or any(w in result["text"].lower() for w in CANARY_WORDS):
                        leaks.append({"who": who, "phrase": number, "result": result})
            results, _ = env.search(student, phrase, top_k=top_k)
            own_found.append(
                bool(results) and results[0]["document_id"] == canary_id and int(results[0]["page"]) == number
            )
        isolation_ok = not leaks

        baseline = None
        if not args.no_baseline:
            t = time.perf_counter()
            base_ranks, base_chunks = baseline_ranks(args.eval_dir, [*pdfs, canary["pdf"]], questions, top_k)
            baseline = {
                "overall": score(base_ranks, top_k),
                "chunks": base_chunks,
                "seconds": time.perf_counter() - t,
                "per_pdf": {},
            }
            for pdf in pdfs:
                baseline["per_pdf"][pdf] = score(
                    [r for r, q in zip(base_ranks, questions, strict=True) if q["pdf"] == pdf], top_k
                )

    per_pdf: dict[str, dict[str, float]] = {}
    grouped: dict[str, list[int | None]] = defaultdict(list)
    for rank, question in zip(ranks, questions, strict=True):
        grouped[question["pdf"]].append(rank)
    for pdf in pdfs:
        per_pdf[pdf] = score(grouped[pdf], top_k)
    overall = score(ranks, top_k)
    hit_k = f"hit@{top_k}"
    anchor_hit5 = baseline["overall"][hit_k] if baseline else README_BASELINE["hit@5"]
    ratio = overall[hit_k] / anchor_hit5 if anchor_hit5 else float("nan")
    met = overall[hit_k] >= GOAL_HIT5 and isolation_ok

    if not args.json:
        print()
        rows = []
        for pdf in [*pdfs, "overall"]:
            ours = overall if pdf == "overall" else per_pdf[pdf]
            row = [
                pdf.removesuffix(".pdf"),
                int(ours["n"]),
                f"{ours['hit@1']:.2f}",
                f"{ours[hit_k]:.2f}",
                f"{ours['mrr']:.3f}",
            ]
            if baseline:
                theirs = baseline["overall"] if pdf == "overall" else baseline["per_pdf"][pdf]
                row += [f"{theirs['hit@1']:.2f}", f"{theirs[hit_k]:.2f}", f"{theirs['mrr']:.3f}"]
            rows.append(row)
        headers = ["pdf", "n", "hit@1", hit_k, "MRR"]
        if baseline:
            headers += ["base hit@1", f"base {hit_k}", "base MRR"]
        print_table(headers, rows)
        print()
        print(
            f"pipeline: {sum(r == 1 for r in ranks)}/{len(ranks)} at rank 1, "
            f"{sum(r is not None for r in ranks)}/{len(ranks)} in the top {top_k}; answer keyword in the top "
            f"{top_k} texts: {sum(keyword_hits)}/{len(keyword_hits)}; "
            f"search p50 {statistics.median(search_ms):.1f} ms"
        )
        if baseline:
            b = baseline["overall"]
            print(
                f"baseline (same run, {baseline['chunks']} fixed windows): "
                f"{round(b['hit@1'] * b['n'])}/{int(b['n'])} at rank 1, "
                f"{round(b[hit_k] * b['n'])}/{int(b['n'])} in the top {top_k}"
            )
        print("eval README baseline: hit@1 30/30, hit@5 30/30")
        print(
            f"{hit_k} ours / baseline: {ratio:.3f}x;  goal {hit_k} >= {GOAL_HIT5}: "
            f"{'met' if overall[hit_k] >= GOAL_HIT5 else 'NOT met'}"
        )
        print(
            f"canary isolation: {'ok' if isolation_ok else 'LEAKED'} ({len(leaks)} leaked results); "
            f"own tenant finds phrase i on page i: {sum(own_found)}/{len(own_found)}"
        )
        if misses:
            print()
            print("not at rank 1:")
            for miss in misses:
                got = "; ".join(f"{pdf.split('-')[0]} p{page} {s:.3f}" for pdf, page, s in miss["got"])
                print(f"  [{miss['pdf'].split('-')[0]} p{miss['page']}] rank {miss['rank']}: {miss['question']}")
                print(f"      got: {got}")

    result = {
        "bench": "retrieval",
        "date": date.today().isoformat(),
        "questions": len(questions),
        "top_k": top_k,
        "chunks": {name: doc["chunks"] for name, doc in documents.items()},
        "overall": {k: round(v, 4) for k, v in overall.items()},
        "per_pdf": {pdf: {k: round(v, 4) for k, v in s.items()} for pdf, s in per_pdf.items()},
        "keyword_at_k": round(sum(keyword_hits) / len(keyword_hits), 4),
        "baseline_same_run": (
            {"overall": {k: round(v, 4) for k, v in baseline["overall"].items()}, "chunks": baseline["chunks"]}
            if baseline
            else None
        ),
        "readme_baseline": README_BASELINE,
        "hit_k_over_baseline": round(ratio, 4),
        "goal_hit5_min": GOAL_HIT5,
        "canary_isolation_ok": isolation_ok,
        "canary_leaks": len(leaks),
        "canary_own_tenant_found": sum(own_found),
        "misses_at_1": [{k: m[k] for k in ("pdf", "page", "rank")} for m in misses],
        "met": met,
        "bench_wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
