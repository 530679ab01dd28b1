"""Benchmark: end-to-end ingestion of a ~100-page PDF against the sum of its raw stages on the same bytes.

    python bench/bench_ingestion.py [--pages 100] [--page-chars 1500] [--rounds 3] [--json]

Subject: upload through the `ingest` function (POST /ingest: checks, document row, S3 put to moto, RQ enqueue),
then the RQ ingestion job (`aiteacher.queue.run_burst`: S3 get, `extract_pages`, `chunk_pages`, embedding,
vector upsert, status), timed from the upload request to the document reading `ready`.

Anchor, measured in the same run on the same bytes: the raw stages one after the other,
  1. a raw pypdf loop: `PdfReader(...).pages[i].extract_text()` for every page,
  2. `chunk_pages` on that text (the configured chunk size and overlap),
  3. `get_embedder().embed` on the pipeline's chunk texts, in the job's batches (`jobs.EMBED_BATCH`),
  4. `EdgeStore.upsert` of as many points (same vectors, same payload shape, same batches) into a shard of
     its own.
Goal: pipeline seconds <= 1.25x the anchor's. Rounds alternate ABBA and medians are compared; the same
ratio on process CPU seconds is printed as a cross-check (less sensitive to other work on the machine).
The pipeline's "other" row (outside the wrapped stages) includes RQ's worker teardown, which can wait up to
1 s for the worker's pubsub thread (see docs/benchmarks.md, Curriculum).

The PDF is generated deterministically (tests/fixtures/make_pdfs.py `text_pdf`, loaded by path): pages of
real textbook prose taken from the eval PDFs (../shared/eval), each page a different run of sentences under
its own heading; without the eval set, synthetic sentences. The whole run is local and embedded (bench/rag_env.py).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from rag_env import EVAL_DIR, RagEnv, latin1, text_pdf_builder, wrap

GOAL_RATIO = 1.25
EVAL_PDFS = (
    "psychology-biopsychology-nervous-system.pdf",
    "philosophy-epistemology.pdf",
    "political-science-legislatures.pdf",
)
FALLBACK_WORDS = [
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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the document -------------------------------------------------------------------------------------


def source_sentences(eval_dir: Path) -> tuple[list[str], str]:
    from aiteacher.ingestion.pdf import extract_pages

    sentences: list[str] = []
    paths = [eval_dir / name for name in EVAL_PDFS]
    if all(path.is_file() for path in paths):
        for path in paths:
            for page in extract_pages(path.read_bytes()).pages:
                text = " ".join(page.text.split())
                sentences.extend(s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if len(s) > 20)
        return [latin1(s) for s in sentences], f"eval PDFs in {eval_dir}"
    rng = random.Random(5)
    for _ in range(600):
        words = [rng.choice(FALLBACK_WORDS) for _ in range(rng.randint(10, 24))]
        sentences.append(" ".join(words).capitalize() + ".")
    return sentences, "synthetic sentences (eval PDFs not found)"


def make_document(pages: int, page_chars: int, seed: int, eval_dir: Path) -> tuple[bytes, str]:
    """`pages` pages of ~`page_chars` characters: a heading, then paragraphs of consecutive sentences
    starting at a different (seeded) place of the source text on every page."""
    sentences, origin = source_sentences(eval_dir)
    rng = random.Random(seed)
    layout: list[list[str]] = []
    for number in range(1, pages + 1):
        lines = [f"Lecture {1 + (number - 1) // 10}, part {1 + (number - 1) % 10}: page {number}", ""]
        position, size = rng.randrange(len(sentences)), 0
        while size < page_chars:
            paragraph = []
            for _ in range(rng.randint(3, 6)):
                sentence = sentences[position % len(sentences)]
                position += 1
                paragraph.append(sentence)
                size += len(sentence) + 1
                if size >= page_chars:
                    break
            lines.extend(wrap(" ".join(paragraph)))
            lines.append("")
        layout.append(lines)
    data = text_pdf_builder()(layout, title="Benchmark lecture notes")
    return data, origin


# --- anchor: the raw stages ---------------------------------------------------------------------------


class RawStages:
    """The four raw stages on the same bytes; `run()` returns seconds per stage."""

    def __init__(self, data: bytes, chunk_texts: list[str], scratch: Path) -> None:
        from aiteacher.config import get_settings
        from aiteacher.curriculum.jobs import EMBED_BATCH
        from aiteacher.embeddings import get_embedder
        from aiteacher.vectors import EdgeStore

        self.data = data
        self.chunk_texts = chunk_texts
        self.batch = EMBED_BATCH
        settings = get_settings()
        self.target, self.overlap = settings.chunk_chars, settings.chunk_overlap_chars
        self.embedder = get_embedder()
        self.store = EdgeStore(scratch / "raw-edge", collection="raw")
        self.store.ensure_collection(self.embedder.name, self.embedder.dimension)
        self.rounds = 0
        self.raw_chunk_count = 0
        self.embed_cpu = 0.0

    def run(self, chunk_texts: list[str] | None = None, document_id: str | None = None) -> dict[str, float]:
        """Seconds per stage; `chunk_texts`/`document_id` override the texts embedded and the points' document
        (the warm-up uses a few texts under a document of its own)."""
        from pypdf import PdfReader

        from aiteacher.ingestion.chunking import chunk_pages
        from aiteacher.ingestion.pdf import PageText
        from aiteacher.vectors import VectorPoint

        texts_to_embed = self.chunk_texts if chunk_texts is None else chunk_texts
        if document_id is None:
            self.rounds += 1
            document_id = f"raw-{self.rounds}"
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        reader = PdfReader(io.BytesIO(self.data))
        texts = [reader.pages[index].extract_text() for index in range(len(reader.pages))]
        t1 = time.perf_counter()
        chunks = chunk_pages(
            [PageText(number=i + 1, text=text) for i, text in enumerate(texts)],
            target_chars=self.target,
            overlap_chars=self.overlap,
        )
        t2, cpu2 = time.perf_counter(), cpu_seconds()
        vectors: list[list[float]] = []
        for start in range(0, len(texts_to_embed), self.batch):
            vectors.extend(self.embedder.embed(texts_to_embed[start : start + self.batch]))
        t3, cpu3 = time.perf_counter(), cpu_seconds()
        self.embed_cpu = cpu3 - cpu2
        for start in range(0, len(vectors), self.batch):
            self.store.upsert(
                [
                    VectorPoint.for_chunk(
                        vector=vectors[i],
                        faculty_id=1,
                        semester_id=1,
                        department_id=None,
                        course="bench",
                        document_id=document_id,
                        title="Benchmark lecture notes",
                        page=1 + i // 3,
                        text=texts_to_embed[i],
                        chunk_index=i,
                    )
                    for i in range(start, min(start + self.batch, len(vectors)))
                ]
            )
        t4 = time.perf_counter()
        if chunk_texts is None:
            self.raw_chunk_count = len(chunks)
        seconds.update(extract=t1 - t0, chunk=t2 - t1, embed=t3 - t2, upsert=t4 - t3)
        return seconds

    def close(self) -> None:
        self.store.close()


# --- subject: the pipeline ----------------------------------------------------------------------------


class StageClock:
    """Accumulates the time the ingestion job spends in each stage, by wrapping the functions it calls
    (module attributes it imports at call time, and methods of the process-wide embedder and store)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._undo: list[Callable[[], None]] = []

    def _wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began, cpu_began = time.perf_counter(), cpu_seconds()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - began
                self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu_seconds() - cpu_began

        had_own = isinstance(owner, type) or name in getattr(owner, "__dict__", {})
        setattr(owner, name, timed)
        self._undo.append((lambda: setattr(owner, name, original)) if had_own else (lambda: delattr(owner, name)))

    def install(self) -> None:
        import aiteacher.ingestion.chunking as chunking
        import aiteacher.ingestion.pdf as pdf
        import aiteacher.storage as storage
        from aiteacher.embeddings import get_embedder
        from aiteacher.vectors import get_vector_store

        self._wrap(storage, "get_object", "s3 get")
        self._wrap(pdf, "extract_pages", "extract")
        self._wrap(chunking, "chunk_pages", "chunk")
        self._wrap(get_embedder(), "embed", "embed")
        self._wrap(get_vector_store(), "upsert", "upsert")

    def take(self) -> tuple[dict[str, float], dict[str, float]]:
        taken, self.seconds = self.seconds, {}
        cpu, self.cpu = self.cpu, {}
        return taken, cpu

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()


def ingest_once(env: RagEnv, data: bytes, name: str, clock: StageClock) -> dict[str, Any]:
    clock.take()
    t0 = time.perf_counter()
    accepted = env.upload(data, name, course="bench-ingestion")
    t1 = time.perf_counter()
    _run_ingest_queue()
    document = env.document(accepted["document_id"])
    t2 = time.perf_counter()
    if document["status"] != "ready":
        raise RuntimeError(f"ingestion did not reach ready: {document}")
    stages, stage_cpu = clock.take()
    env.run_jobs()  # the uploader's notification, outside the timing
    stages["upload (HTTP)"] = t1 - t0
    inner = sum(stages.values())
    stages["other (DB, queue, status)"] = (t2 - t0) - inner
    return {
        "seconds": t2 - t0,
        "stages": stages,
        "cpu": stage_cpu,
        "pages": document["pages"],
        "chunks": document["chunks"],
    }


def _run_ingest_queue() -> None:
    from aiteacher.queue import run_burst

    run_burst(("ingest",))


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--page-chars", type=int, default=1500, help="text per page (lecture-note density)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side, ABBA order (median)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    say = (lambda *a, **k: None) if args.json else print
    began = time.perf_counter()

    with RagEnv(prefix="bench-ingestion-") as env, tempfile.TemporaryDirectory(prefix="bench-ingestion-raw-") as raw:
        from aiteacher.config import get_settings
        from aiteacher.ingestion.chunking import chunk_pages
        from aiteacher.ingestion.pdf import extract_pages

        data, origin = make_document(args.pages, args.page_chars, args.seed, args.eval_dir)
        settings = get_settings()
        chunks = chunk_pages(
            extract_pages(data).pages, target_chars=settings.chunk_chars, overlap_chars=settings.chunk_overlap_chars
        )
        chunk_texts = [chunk.text for chunk in chunks]
        say(
            f"PDF: {args.pages} pages, {len(data) / 1024:.0f} KiB, {len(chunks)} chunks "
            f"({settings.chunk_chars}/{settings.chunk_overlap_chars} chars), text from {origin}"
        )

        # Warm-up on a small slice: model load, pypdf imports, both vector collections, the SQL paths.
        small, _ = make_document(3, args.page_chars, args.seed + 1, args.eval_dir)
        clock = StageClock()
        clock.install()
        try:
            ingest_once(env, small, "warmup.pdf", clock)
            anchor = RawStages(data, chunk_texts, Path(raw))
            anchor.run(chunk_texts[:16], document_id="raw-warmup")

            pipeline_runs: list[dict[str, Any]] = []
            anchor_runs: list[dict[str, float]] = []
            pipeline_cpu: list[float] = []
            anchor_cpu: list[float] = []
            anchor_embed_cpu: list[float] = []
            for index in range(args.rounds):
                order = ("pipeline", "anchor") if index % 2 == 0 else ("anchor", "pipeline")
                for side in order:
                    c0 = cpu_seconds()
                    if side == "pipeline":
                        pipeline_runs.append(ingest_once(env, data, f"lecture-notes-{index}.pdf", clock))
                        pipeline_cpu.append(cpu_seconds() - c0)
                    else:
                        anchor_runs.append(anchor.run())
                        anchor_cpu.append(cpu_seconds() - c0)
                        anchor_embed_cpu.append(anchor.embed_cpu)
                say(
                    f"  round {index + 1}: pipeline {pipeline_runs[-1]['seconds']:.1f} s, "
                    f"raw stages {sum(anchor_runs[-1].values()):.1f} s",
                    flush=True,
                )
            raw_chunks = anchor.raw_chunk_count
            anchor.close()
        finally:
            clock.remove()

    pipeline_s = statistics.median(run["seconds"] for run in pipeline_runs)
    anchor_s = statistics.median(sum(run.values()) for run in anchor_runs)
    ratio = pipeline_s / anchor_s
    cpu_ratio = statistics.median(pipeline_cpu) / statistics.median(anchor_cpu)
    pipeline_embed_cpu = statistics.median(run["cpu"].get("embed", 0.0) for run in pipeline_runs)
    embed_cpu = statistics.median(anchor_embed_cpu)
    pipeline_stages = {
        name: statistics.median(run["stages"].get(name, 0.0) for run in pipeline_runs)
        for name in pipeline_runs[0]["stages"]
    }
    anchor_stages = {name: statistics.median(run[name] for run in anchor_runs) for name in anchor_runs[0]}
    met = ratio <= GOAL_RATIO

    say()
    rows = []
    pairs = [
        ("upload (HTTP)", None),
        ("s3 get", None),
        ("extract", "extract"),
        ("chunk", "chunk"),
        ("embed", "embed"),
        ("upsert", "upsert"),
        ("other (DB, queue, status)", None),
    ]
    for ours, theirs in pairs:
        mine = pipeline_stages.get(ours, 0.0)
        base = anchor_stages.get(theirs) if theirs else None
        rows.append(
            [ours, f"{mine:.3f}", f"{base:.3f}" if base is not None else "-", f"{mine / base:.2f}x" if base else "-"]
        )
    rows.append(["total", f"{pipeline_s:.3f}", f"{anchor_s:.3f}", f"{ratio:.2f}x"])
    if not args.json:
        from common import print_table

        print_table(["stage (median s)", "pipeline", "raw anchor", "ratio"], rows)
        print()
        print(
            f"pipeline (upload -> ready)  {pipeline_s:8.2f} s  {args.pages / pipeline_s:6.1f} pages/s  "
            f"{len(chunks) / pipeline_s:6.1f} chunks/s"
        )
        print(f"raw stages, summed          {anchor_s:8.2f} s  {args.pages / anchor_s:6.1f} pages/s")
        print(f"ratio pipeline/raw (wall)   {ratio:8.2f}x  (goal <= {GOAL_RATIO}x: {'met' if met else 'NOT met'})")
        print(
            f"ratio pipeline/raw (CPU)    {cpu_ratio:8.2f}x  (cross-check: process CPU seconds, "
            f"{statistics.median(pipeline_cpu):.1f} / {statistics.median(anchor_cpu):.1f})"
        )
        print(
            f"embed stage CPU seconds     {pipeline_embed_cpu:8.1f} pipeline / {embed_cpu:.1f} raw "
            f"(wall {pipeline_stages.get('embed', 0.0):.1f} / {anchor_stages['embed']:.1f})"
        )
        if raw_chunks != len(chunks):
            print(f"note: chunking the raw pypdf text gives {raw_chunks} chunks, the pipeline {len(chunks)}")

    result = {
        "bench": "ingestion",
        "date": date.today().isoformat(),
        "pages": args.pages,
        "page_chars": args.page_chars,
        "pdf_kib": round(len(data) / 1024),
        "chunks": len(chunks),
        "raw_chunks": raw_chunks,
        "rounds": args.rounds,
        "pipeline_s": round(pipeline_s, 3),
        "anchor_s": round(anchor_s, 3),
        "pipeline_stages_s": {k: round(v, 3) for k, v in pipeline_stages.items()},
        "anchor_stages_s": {k: round(v, 3) for k, v in anchor_stages.items()},
        "pipeline_runs_s": [round(run["seconds"], 3) for run in pipeline_runs],
        "anchor_runs_s": [round(sum(run.values()), 3) for run in anchor_runs],
        "pipeline_other_runs_s": [round(run["stages"]["other (DB, queue, status)"], 3) for run in pipeline_runs],
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "pipeline_cpu_s": round(statistics.median(pipeline_cpu), 3),
        "anchor_cpu_s": round(statistics.median(anchor_cpu), 3),
        "embed_cpu_s": {"pipeline": round(pipeline_embed_cpu, 3), "raw": round(embed_cpu, 3)},
        "goal_ratio_max": GOAL_RATIO,
        "met": met,
        "bench_wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
