"""Qdrant Edge through `aiteacher.vectors.EdgeStore`: tenant-filtered vs unfiltered search latency,
and recall@k of the filtered search against exact numpy search on the tenant's slice.

    python bench/bench_vectors.py [--points 100000] [--queries 200] [--json]

Goals: filtered p50 <= 1.2x unfiltered p50 (the anchor, measured in the same run), recall@10 >= 0.98.
Random unit vectors, `--faculties x --semesters` tenants, one shard in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from aiteacher.vectors import EdgeStore, VectorPoint

CHUNKS_PER_DOCUMENT = 40
TEXT = (
    "Lecture notes on graph algorithms: breadth-first search, depth-first search, shortest paths and "
    "minimum spanning trees, with worked examples and exercises for the tutorial session. "
) * 3


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--faculties", type=int, default=5)
    parser.add_argument("--semesters", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000, help="points per upsert call")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="shard folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    tenants = [(f, s) for f in range(1, args.faculties + 1) for s in range(1, args.semesters + 1)]
    vectors = rng.standard_normal((args.points, args.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tenant_of = rng.integers(0, len(tenants), size=args.points)

    with tempfile.TemporaryDirectory(prefix="bench-edge-") as scratch:
        root = args.dir or Path(scratch) / "qdrant-edge"
        store = EdgeStore(root, collection="bench")
        try:
            store.ensure_collection("bench-random", args.dim)
            started = time.perf_counter()
            ids: list[int | str] = []
            for start in range(0, args.points, args.batch):
                batch = []
                for i in range(start, min(start + args.batch, args.points)):
                    faculty, semester = tenants[tenant_of[i]]
                    document = i // CHUNKS_PER_DOCUMENT
                    point = VectorPoint.for_chunk(
                        vector=vectors[i].tolist(),
                        faculty_id=faculty,
                        semester_id=semester,
                        department_id=faculty,
                        course=f"course-{document % 7}",
                        document_id=document,
                        title=f"Document {document}",
                        page=i % CHUNKS_PER_DOCUMENT + 1,
                        text=TEXT,
                        chunk_index=i % CHUNKS_PER_DOCUMENT,
                    )
                    batch.append(point)
                store.upsert(batch)
                ids.extend(point.id for point in batch)
            upsert_seconds = time.perf_counter() - started
            index_of = {str(point_id): i for i, point_id in enumerate(ids)}

            query_rng = random.Random(args.seed)
            filtered_ms: list[float] = []
            unfiltered_ms: list[float] = []
            recalls: list[float] = []
            for q in range(args.queries + 5):  # the first 5 warm the caches and are not counted
                tenant = query_rng.randrange(len(tenants))
                faculty, semester = tenants[tenant]
                query = rng.standard_normal(args.dim, dtype=np.float32)
                query /= np.linalg.norm(query)
                query_list = query.tolist()
                filters = {"faculty_id": faculty, "semester_id": semester}

                # Alternate which runs first so neither gets a systematically warmer cache.
                order = (True, False) if q % 2 else (False, True)
                for filtered in order:
                    t0 = time.perf_counter()
                    hits = store.search(query_list, filters=filters if filtered else None, limit=args.limit)
                    elapsed = (time.perf_counter() - t0) * 1000
                    if q < 5:
                        continue
                    if filtered:
                        filtered_ms.append(elapsed)
                        members = np.flatnonzero(tenant_of == tenant)
                        scores = vectors[members] @ query
                        top = members[np.argsort(-scores)[: args.limit]]
                        found = {index_of[hit.id] for hit in hits}
                        recalls.append(len(found & set(top.tolist())) / min(args.limit, len(members)))
                    else:
                        unfiltered_ms.append(elapsed)
            count = store.count()
        finally:
            store.close()

    result: dict[str, object] = {
        "points": args.points,
        "stored": count,
        "dim": args.dim,
        "tenants": len(tenants),
        "points_per_tenant": round(args.points / len(tenants)),
        "queries": args.queries,
        "limit": args.limit,
        "upsert_points_per_s": round(args.points / upsert_seconds),
        "filtered_p50_ms": round(statistics.median(filtered_ms), 3),
        "filtered_p95_ms": round(percentile(filtered_ms, 0.95), 3),
        "unfiltered_p50_ms": round(statistics.median(unfiltered_ms), 3),
        "unfiltered_p95_ms": round(percentile(unfiltered_ms, 0.95), 3),
        "filtered_over_unfiltered_p50": round(statistics.median(filtered_ms) / statistics.median(unfiltered_ms), 3),
        "recall_at_k": round(statistics.mean(recalls), 4),
        "goal_ratio_max": 1.2,
        "goal_recall_min": 0.98,
    }
    result["ratio_ok"] = result["filtered_over_unfiltered_p50"] <= 1.2  # type: ignore[operator]
    result["recall_ok"] = result["recall_at_k"] >= 0.98  # type: ignore[operator]

    if not args.json:
        print(
            f"Qdrant Edge (EdgeStore), {args.points} x {args.dim}-d points, {len(tenants)} tenants, "
            f"{args.queries} queries, top-{args.limit}"
        )
        print(f"  upsert                      {result['upsert_points_per_s']:>10} points/s")
        print(f"  search unfiltered  p50/p95  {result['unfiltered_p50_ms']:>8} / {result['unfiltered_p95_ms']} ms")
        print(f"  search tenant      p50/p95  {result['filtered_p50_ms']:>8} / {result['filtered_p95_ms']} ms")
        print(f"  ratio filtered/unfiltered   {result['filtered_over_unfiltered_p50']:>8}  (goal <= 1.2)")
        print(f"  recall@{args.limit} vs exact numpy     {result['recall_at_k']:>8}  (goal >= 0.98)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
