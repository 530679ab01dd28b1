"""Benchmark: search latency through the `search` function over real HTTP, cached vs uncached, and the share of
retrieval (query embedding + vector search) in an uncached request.

    python bench/bench_search.py [--queries 150] [--cached-queries 15] [--repeats 10] [--json]

Setup (bench/rag_env.py, all local): the three eval textbook PDFs (../shared/eval; a generated 30-page PDF
without them) uploaded through the `ingest` function and ingested by the RQ job, the gateway served by uvicorn
on a free 127.0.0.1 port, one placed student, one keep-alive httpx client sending requests one at a time.

- uncached: `--queries` unique queries (first words of distinct sentences of the corpus), each sent once, so
  every request embeds and searches (`X-Cache: miss` is checked on every reply);
- cached: `--cached-queries` queries sent once to fill the cache, then `--repeats` more times each
  (`X-Cache: hit` is checked);
- anchors in the same process and run: `aiteacher.curriculum.search.retrieve` (embed + vector search, no HTTP,
  no cache) on the same unique queries, split into `embed_query` and the filtered vector search; and a bare
  FastAPI hello app on the same uvicorn setup (the floor of any request).

Goals (set here; DESIGN.md gives none): cached p50 <= 0.5x uncached p50 (the cache must pay for itself), and
uncached p50 <= 1.5x raw retrieval p50 (the function's own work: auth, profile read, scope, cache lookup and
store, audit, JSON, stays below half of the retrieval it wraps). The four measurements are interleaved query
by query, their order flipped every query (ABBA), so a drifting machine hits them alike. `retrieve`,
`embed_query` and the store's `search` are also timed inside the server's uncached requests.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from common import Timings, hello_app, percentile, print_table
from rag_env import EVAL_DIR, RagEnv, free_port, latin1, text_pdf_builder, wrap

CACHED_GOAL = 0.5
OVERHEAD_GOAL = 1.5
EVAL_PDFS = (
    "psychology-biopsychology-nervous-system.pdf",
    "philosophy-epistemology.pdf",
    "political-science-legislatures.pdf",
)


def corpus(eval_dir: Path) -> tuple[list[tuple[str, bytes]], str]:
    paths = [eval_dir / name for name in EVAL_PDFS]
    if all(path.is_file() for path in paths):
        return [(path.name, path.read_bytes()) for path in paths], f"the 3 eval PDFs in {eval_dir}"
    rng = random.Random(9)
    words = [
        "neuron",
        "synapse",
        "membrane",
        "potential",
        "legislature",
        "chamber",
        "committee",
        "bill",
        "knowledge",
        "belief",
        "justification",
        "evidence",
        "hormone",
        "gland",
        "cortex",
        "parliament",
    ]
    pages = []
    for number in range(30):
        text = " ".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "." for _ in range(25)
        )
        pages.append([f"Page {number + 1}", "", *wrap(latin1(text))])
    return [("generated.pdf", text_pdf_builder()(pages))], "a generated 30-page PDF (eval PDFs not found)"


def unique_queries(texts: list[str], count: int, seed: int) -> list[str]:
    """Distinct (after the cache's normalisation: lower case, single spaces) queries of 6-14 words."""
    rng = random.Random(seed)
    sentences = [s for text in texts for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split()))]
    rng.shuffle(sentences)
    seen: set[str] = set()
    queries = []
    for sentence in sentences:
        words = sentence.split()
        if len(words) < 6:
            continue
        query = " ".join(words[: rng.randint(6, 14)]).rstrip(",;:")
        key = " ".join(query.lower().split())
        if key not in seen:
            seen.add(key)
            queries.append(query)
        if len(queries) == count:
            break
    if len(queries) < count:
        raise SystemExit(f"the corpus gives only {len(queries)} distinct queries; lower --queries")
    return queries


def serve_hello() -> tuple[Any, Any, str]:
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(hello_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="bench-hello", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


class SearchTimings(Timings):
    """Wraps `curriculum.search.retrieve`, the embedder's `embed_query` and the store's `search` (process-wide
    objects, so both the in-process anchor and the server's request threads are measured) and records their
    milliseconds into `sink`, which the caller swaps between steps (one request at a time, so no overlap)."""

    def __init__(self, retrieve_module: Any) -> None:
        from aiteacher.embeddings import get_embedder
        from aiteacher.vectors import get_vector_store

        super().__init__()
        self.wrap(retrieve_module, "retrieve", "retrieve")
        self.wrap(get_embedder(), "embed_query", "embed_query")
        self.wrap(get_vector_store(), "search", "vector_search")


def stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p95": percentile(values, 0.95),
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=150, help="unique (uncached) queries")
    parser.add_argument("--cached-queries", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=10, help="cached requests per cached query")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    say = (lambda *a, **k: None) if args.json else print
    began = time.perf_counter()

    import httpx

    with RagEnv(prefix="bench-search-") as env:
        import aiteacher.curriculum.search as retrieve_module
        from aiteacher.curriculum.search import Scope
        from aiteacher.ingestion.pdf import extract_pages
        from aiteacher.vectors import get_vector_store

        documents, origin = corpus(args.eval_dir)
        t0 = time.perf_counter()
        chunks = 0
        for name, data in documents:
            env.upload(data, name, course="bench-search")
        env.run_jobs()
        texts = []
        for _, data in documents:
            texts.extend(page.text for page in extract_pages(data).pages)
        ingest_s = time.perf_counter() - t0
        student = env.student
        assert student is not None and student.faculty_id is not None
        scope = Scope(student.faculty_id, student.semester_id, None)
        chunks = get_vector_store().count({"faculty_id": student.faculty_id})
        say(f"corpus: {origin}: {chunks} chunks, ingested in {ingest_s:.1f} s")

        queries = unique_queries(texts, args.queries + args.cached_queries + 10, args.seed)
        warm, cached_set, fresh = (
            queries[:10],
            queries[10 : 10 + args.cached_queries],
            queries[10 + args.cached_queries :],
        )
        body = {"top_k": args.top_k}

        hello_server, hello_thread, hello_url = serve_hello()
        with (
            env.live() as base,
            httpx.Client(base_url=base, headers=student.headers, timeout=60) as http,
            httpx.Client(base_url=hello_url, timeout=60) as hello_http,
        ):

            def post(query: str) -> tuple[float, str]:
                t = time.perf_counter()
                response = http.post("/search", json={"query": query, **body})
                elapsed = (time.perf_counter() - t) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"search: {response.status_code} {response.text[:300]}")
                return elapsed, response.headers.get("x-cache", "")

            # Warm-up: model, server, both code paths, the anchors.
            for query in warm:
                post(query)
                post(query)
                retrieve_module.retrieve(scope, query, args.top_k)
                hello_http.get("/")
            for query in cached_set:  # fill the cache
                post(query)

            # Per-query interleaving: uncached HTTP, in-process retrieve() of the same query, a few cached HTTP
            # requests, the hello floor; the order flips every query (ABBA), so drift hits every side alike.
            series: dict[str, list[float]] = {
                name: []
                for name in (
                    "uncached",
                    "cached",
                    "retrieve",
                    "embed_query",
                    "vector_search",
                    "in_request_retrieve",
                    "in_request_embed",
                    "in_request_vector",
                    "hello",
                )
            }
            wrong_cache = 0
            timing = SearchTimings(retrieve_module)
            hits_plan = [q for _ in range(args.repeats) for q in cached_set]
            per_query = -(-len(hits_plan) // len(fresh))

            def run_uncached(query: str) -> None:
                nonlocal wrong_cache
                timing.sink = {}
                ms, cache = post(query)
                series["uncached"].append(ms)
                wrong_cache += cache != "miss"
                series["in_request_retrieve"].extend(timing.sink.get("retrieve", []))
                series["in_request_embed"].extend(timing.sink.get("embed_query", []))
                series["in_request_vector"].extend(timing.sink.get("vector_search", []))

            def run_raw(query: str) -> None:
                timing.sink = {}
                retrieve_module.retrieve(scope, query, args.top_k)
                for name in ("retrieve", "embed_query", "vector_search"):
                    series[name].extend(timing.sink.get(name, []))

            def run_cached(part: list[str]) -> None:
                nonlocal wrong_cache
                timing.sink = {}
                for query in part:
                    ms, cache = post(query)
                    series["cached"].append(ms)
                    wrong_cache += cache != "hit"

            def run_hello(count: int) -> None:
                for _ in range(count):
                    t = time.perf_counter()
                    hello_http.get("/").raise_for_status()
                    series["hello"].append((time.perf_counter() - t) * 1000)

            try:
                for index, query in enumerate(fresh):
                    hit_part = hits_plan[index * per_query : (index + 1) * per_query]
                    steps = [
                        (run_uncached, query),
                        (run_raw, query),
                        (run_cached, hit_part),
                        (run_hello, max(1, len(hit_part))),
                    ]
                    for step, argument in steps if index % 2 == 0 else steps[::-1]:
                        step(argument)
            finally:
                timing.remove()
        hello_server.should_exit = True
        hello_thread.join(timeout=10)

    result_stats = {name: stats(values) for name, values in series.items()}
    cached_ratio = result_stats["cached"]["p50"] / result_stats["uncached"]["p50"]
    overhead_ratio = result_stats["uncached"]["p50"] / result_stats["retrieve"]["p50"]
    cached_met, overhead_met = cached_ratio <= CACHED_GOAL, overhead_ratio <= OVERHEAD_GOAL

    if not args.json:
        print()
        labels = {
            "uncached": "search, uncached (HTTP)",
            "in_request_retrieve": "  in it: retrieve()",
            "in_request_embed": "    embed_query",
            "in_request_vector": "    vector search",
            "cached": "search, cached (HTTP)",
            "retrieve": "retrieve() in-process (anchor)",
            "embed_query": "    embed_query",
            "vector_search": "    vector search",
            "hello": "hello app (HTTP floor)",
        }
        print_table(
            ["ms", "n", "p50", "p95", "mean"],
            [
                [
                    labels[k],
                    result_stats[k]["n"],
                    f"{result_stats[k]['p50']:.2f}",
                    f"{result_stats[k]['p95']:.2f}",
                    f"{result_stats[k]['mean']:.2f}",
                ]
                for k in labels
            ],
        )
        print()
        print(
            f"cached p50 / uncached p50      {cached_ratio:6.3f}x  (goal <= {CACHED_GOAL}x: "
            f"{'met' if cached_met else 'NOT met'})"
        )
        print(
            f"uncached p50 / retrieve p50    {overhead_ratio:6.3f}x  (goal <= {OVERHEAD_GOAL}x: "
            f"{'met' if overhead_met else 'NOT met'})"
        )
        print(
            f"cached p50 / hello p50         {result_stats['cached']['p50'] / result_stats['hello']['p50']:6.2f}x"
            "  (information)"
        )
        if wrong_cache:
            print(f"warning: {wrong_cache} replies had an unexpected X-Cache header")

    result = {
        "bench": "search",
        "date": date.today().isoformat(),
        "corpus_chunks": chunks,
        "top_k": args.top_k,
        **{f"{k}_p50_ms": round(v["p50"], 3) for k, v in result_stats.items()},
        **{f"{k}_p95_ms": round(v["p95"], 3) for k, v in result_stats.items()},
        "uncached_n": len(series["uncached"]),
        "cached_n": len(series["cached"]),
        "unexpected_x_cache": wrong_cache,
        "cached_over_uncached_p50": round(cached_ratio, 3),
        "uncached_over_retrieve_p50": round(overhead_ratio, 3),
        "cached_over_hello_p50": round(result_stats["cached"]["p50"] / result_stats["hello"]["p50"], 3),
        "goal_cached_ratio_max": CACHED_GOAL,
        "goal_overhead_ratio_max": OVERHEAD_GOAL,
        "cached_met": cached_met,
        "overhead_met": overhead_met,
        "met": cached_met and overhead_met and not wrong_cache,
        "bench_wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
