"""Filtered hybrid search speed on Qdrant Edge (`EdgeStore`) against dense-only search in the same run, and
recall@10 of both against exact search.

    python bench/bench_hybrid_speed.py [--points 20000] [--queries 100] [--json]
    python bench/bench_hybrid_speed.py --points 100000          # the figure in docs/benchmarks.md
    python bench/bench_hybrid_speed.py --points 100000 --limit 10   # top 10 chunks (not what /search asks)

Random unit dense vectors; sparse vectors of 60 distinct terms drawn from a Zipf law over a 20,000-term
vocabulary with BM25-like weights; 50 tenants (5 faculties x 10 semesters), every query filtered to one.
Queries: a random dense vector and 4 terms of a random stored chunk of the tenant (none of the 50 most frequent
terms: those stand for the stop words the tokenizer drops from queries). Dense, hybrid (the default fusion,
or with --by-page the adaptive weight over pages) and hybrid with fixed weights (`Fusion(confidence=0)`) run
in rotating order per query. `--text-chars N` stores N characters of text with each point. Exact answers:
numpy cosine over the tenant's points (dense) and the same fusion, the query's adaptive weight included,
computed exactly over every point of the tenant, with Qdrant's IDF over the whole shard (hybrid).
`--limit` defaults to what the search function asks the engine for a default search (top 5 pages): top_k *
`CANDIDATES_PER_RESULT` = 20 chunks, collapsed to one per page afterwards; recall is measured at that limit.
Goals: hybrid p50 <= 1.5x dense p50, recall@limit >= 0.98.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiteacher.curriculum.schemas import SearchIn
from aiteacher.curriculum.search import CANDIDATES_PER_RESULT
from aiteacher.vectors import EdgeStore, Fusion, VectorPoint
from aiteacher.vectors.base import adaptive_weight
from aiteacher.vectors.lexical import SparseVector

VOCABULARY = 20_000
TERMS_PER_CHUNK = 60
#: The most frequent terms stand for stop words, which the tokenizer drops from queries.
HEAD_TERMS = 50
#: The search contract's default `top_k` (POST /search; the tutor's `tutor_top_k` defaults to the same).
DEFAULT_TOP_K: int = SearchIn.model_fields["top_k"].default


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--limit", type=int, default=DEFAULT_TOP_K * CANDIDATES_PER_RESULT)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--text-chars", type=int, default=0, help="chunk text stored with each point (0: none)")
    parser.add_argument(
        "--by-page", action="store_true", help="time the adaptive weight over pages (reads page fields) as hybrid"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    tenants = [(f, s) for f in range(1, 6) for s in range(1, 11)]
    vectors = rng.standard_normal((args.points, args.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tenant_of = rng.integers(0, len(tenants), size=args.points)
    zipf = 1.0 / np.arange(1, VOCABULARY + 1)
    zipf /= zipf.sum()
    sparse: list[SparseVector] = []
    postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for i in range(args.points):
        terms = np.unique(rng.choice(VOCABULARY, size=TERMS_PER_CHUNK, p=zipf))
        weights = rng.uniform(0.8, 2.0, size=len(terms)).round(4)
        sparse.append(SparseVector(terms.tolist(), weights.tolist()))
        for term, weight in zip(terms.tolist(), weights.tolist(), strict=True):
            postings[term].append((i, weight))
    fusion = Fusion()
    filler = ("Chunk text of about the length ingestion stores with each point. " * 40)[:4000]
    # The fixed-weight formula, timed in the same run (with --by-page: the adaptive weight over pages, which
    # reads the candidates' page fields, as "hybrid" instead of the default).
    fixed = Fusion(confidence=0.0)
    if args.by_page:
        fusion = Fusion(confidence_by_page=True)

    with tempfile.TemporaryDirectory(prefix="bench-hybrid-") as scratch:
        store = EdgeStore(Path(scratch) / "edge", collection="bench")
        try:
            store.ensure_collection("bench-random", args.dim)
            started = time.perf_counter()
            ids: list[int | str] = []
            for start in range(0, args.points, 2000):
                batch = []
                for i in range(start, min(start + 2000, args.points)):
                    faculty, semester = tenants[tenant_of[i]]
                    point = VectorPoint.for_chunk(
                        vector=vectors[i].tolist(),
                        faculty_id=faculty,
                        semester_id=semester,
                        department_id=None,
                        course="c",
                        document_id=i // 40,
                        title="t",
                        page=i % 40 + 1,
                        text=filler[: args.text_chars],
                        chunk_index=i % 40,
                    )
                    batch.append(VectorPoint(point.id, point.vector, point.payload, lexical=sparse[i]))
                store.upsert(batch)
                ids.extend(p.id for p in batch)
            upsert_seconds = time.perf_counter() - started
            index_of = {str(point_id): i for i, point_id in enumerate(ids)}
            idf = {term: math.log(1 + (args.points - len(p) + 0.5) / (len(p) + 0.5)) for term, p in postings.items()}

            query_rng = random.Random(args.seed)
            timings: dict[str, list[float]] = {"dense": [], "hybrid": [], "fixed": []}
            recalls: dict[str, list[float]] = {"dense": [], "hybrid": []}
            for q in range(args.queries + 5):
                tenant = query_rng.randrange(len(tenants))
                faculty, semester = tenants[tenant]
                members = np.flatnonzero(tenant_of == tenant)
                source = sparse[int(query_rng.choice(members.tolist()))]
                content = [t for t in source.indices if t >= HEAD_TERMS] or source.indices
                terms = query_rng.sample(content, min(4, len(content)))
                lexical = SparseVector(sorted(terms), [1.0] * len(terms))
                query = rng.standard_normal(args.dim, dtype=np.float32)
                query /= np.linalg.norm(query)
                filters = {"faculty_id": faculty, "semester_id": semester}
                found: dict[str, set[int]] = {}
                modes = ("dense", "hybrid", "fixed")
                for mode in modes[q % 3 :] + modes[: q % 3]:
                    t0 = time.perf_counter()
                    hits = store.search(
                        query.tolist(),
                        lexical=lexical if mode != "dense" else None,
                        filters=filters,
                        limit=args.limit,
                        fusion=fusion if mode != "fixed" else fixed,
                    )
                    elapsed = (time.perf_counter() - t0) * 1000
                    found[mode] = {index_of[h.id] for h in hits}
                    if q >= 5:
                        timings[mode].append(elapsed)
                if q < 5:
                    continue
                cosine = vectors[members] @ query
                exact_dense = set(members[np.argsort(-cosine)[: args.limit]].tolist())
                recalls["dense"].append(len(found["dense"] & exact_dense) / len(exact_dense))
                member_set = set(members.tolist())
                bm25: dict[int, float] = defaultdict(float)
                for term in terms:
                    for point, weight in postings[term]:
                        if point in member_set:
                            bm25[point] += idf[term] * weight
                lexical_part = np.array([bm25.get(int(m), 0.0) for m in members])
                # The query's adaptive weight from the exact lists (each point is its own page here).
                weight = adaptive_weight(cosine.tolist(), lexical_part.tolist(), fusion)
                fused = weight * cosine + (1 - weight) * lexical_part / (lexical_part + fusion.saturation)
                exact_hybrid = set(members[np.argsort(-fused)[: args.limit]].tolist())
                recalls["hybrid"].append(len(found["hybrid"] & exact_hybrid) / len(exact_hybrid))
        finally:
            store.close()

    dense_p50, hybrid_p50 = statistics.median(timings["dense"]), statistics.median(timings["hybrid"])
    result: dict[str, object] = {
        "points": args.points,
        "tenants": len(tenants),
        "queries": args.queries,
        "limit": args.limit,
        "upsert_points_per_s": round(args.points / upsert_seconds),
        "dense_p50_ms": round(dense_p50, 3),
        "hybrid_p50_ms": round(hybrid_p50, 3),
        "hybrid_over_dense_p50": round(hybrid_p50 / dense_p50, 3),
        "fixed_weight_hybrid_p50_ms": round(statistics.median(timings["fixed"]), 3),
        "fixed_weight_over_dense_p50": round(statistics.median(timings["fixed"]) / dense_p50, 3),
        "dense_recall_at_k": round(statistics.mean(recalls["dense"]), 4),
        "hybrid_recall_at_k": round(statistics.mean(recalls["hybrid"]), 4),
        "goal_ratio_max": 1.5,
        "goal_recall_min": 0.98,
    }
    if not args.json:
        print(
            f"Qdrant Edge, {args.points} points, {len(tenants)} tenants, {args.queries} filtered queries, "
            f"top-{args.limit}"
        )
        print(f"  upsert (dense + sparse)     {result['upsert_points_per_s']:>10} points/s")
        print(f"  dense  p50                  {result['dense_p50_ms']:>10} ms   recall {result['dense_recall_at_k']}")
        print(f"  hybrid p50                  {result['hybrid_p50_ms']:>10} ms   recall {result['hybrid_recall_at_k']}")
        print(f"  hybrid / dense              {result['hybrid_over_dense_p50']:>10}      (goal <= 1.5)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
