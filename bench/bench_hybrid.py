"""Benchmark: hybrid retrieval quality on a harder set (16 GNU manuals, one tenant) and on ../shared/eval.

    python bench/bench_hybrid.py [--set gnu|eval|both] [--variants plain,context] [--weights 0.4,0.6
        --saturations 2,6 --normalize saturation,minmax,dbsf] [--second 0,0.5] [--cache F] [--dump F]

The GNU set: 30,000 characters of each of 16 GNU manuals installed on this machine (/usr/share/info, GFDL;
see bench/hybrid/SOURCES.md), rendered to PDFs at bench time with the repository's small PDF writer, then
extracted, chunked (ingestion.chunking), embedded (the configured embedder: local MiniLM by default) and
indexed into one Qdrant Edge shard with dense + BM25 vectors, as the ingestion job does (`--variants context`;
`plain` indexes the chunk text alone with BM25 b 0.75, the previous recipe, see VARIANTS). Titles follow the
app's title rule (the PDF's own title, else one made from the file name).
bench/hybrid/questions.json holds paraphrased questions; a question's gold page is the page of its document
that defines its anchor (a line starting with it), else the first page that mentions it. 14 have
competitors (the same option in another manual), 7 have no answer (reported as the mean top score).

Modes, all collapsed to one result per (document, page) before the cut (a page scores as its best chunk, or
best + X * second-best with `--second`): dense only, lexical only, hybrid by formula at each weight and
normalisation, hybrid by weighted RRF. `--dump F` writes each mode's rank per question to F.<set>.json.
Anchor in the same run: a plain sliding-window dense baseline
(raw page text, 1,000-character windows with 200 overlap, exact cosine with numpy). Reported: hit@1/5/10
and MRR, and each as a ratio to the baseline. Goal: hybrid hit@1 >= 1.25x baseline on the GNU set and not
below the baseline on ../shared/eval.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, load_module, print_table

os.environ.setdefault("AITEACHER_ENV", "dev")
INFO_DIR = Path("/usr/share/info")
MANUALS = (
    "bc",
    "bzip2",
    "coreutils",
    "diffutils",
    "ed",
    "find.info-1",
    "gettext",
    "grep",
    "gzip",
    "sed",
    "time",
    "wget",
    "rluserman",
    "nettle",
    "libtasn1",
    "autosprintf",
)
SLICE_CHARS = 30_000
LINE_CHARS, LINES_PER_PAGE = 95, 58
HERE = Path(__file__).resolve().parent / "hybrid"


def manual_text(name: str) -> str:
    import gzip

    raw = gzip.decompress(
        (
            INFO_DIR / f"{name.split('.info')[0] if '.info' in name else name}.info.gz"
            if ".info" not in name
            else INFO_DIR / f"{name}.gz"
        ).read_bytes()
    ).decode("utf-8", "replace")
    raw = raw.replace("\x1f", "")
    nodes = [m.start() for m in re.finditer(r"^File: ", raw, re.M)]
    start = nodes[2] if len(nodes) > 2 else 0  # skip the header and the Top node's menu
    return raw[start : start + SLICE_CHARS]


def pages_of(text: str) -> list[list[str]]:
    lines: list[str] = []
    for line in text.splitlines():
        lines.extend(textwrap.wrap(line, LINE_CHARS) or [""])
    lines = [line.encode("latin-1", "replace").decode("latin-1") for line in lines]
    return [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]


def gnu_corpus() -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    writer = load_module("tests/fixtures/make_pdfs.py", "bench_make_pdfs")
    pdfs = {}
    for name in MANUALS:
        short = name.split(".")[0]
        pdfs[short] = writer.text_pdf(pages_of(manual_text(name)), title=f"GNU {short} manual")
    questions = json.loads((HERE / "questions.json").read_text())
    return pdfs, questions


def eval_corpus(eval_dir: Path) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    questions = json.loads((eval_dir / "questions.json").read_text())
    names = sorted({q["pdf"] for q in questions})
    return (
        {name: (eval_dir / name).read_bytes() for name in names},
        [{"q": q["question"], "doc": q["pdf"], "page": q["page"]} for q in questions],
    )


def gold_pages(pages: dict[str, list[str]], questions: list[dict[str, Any]]) -> None:
    """A question's gold page: the page that *defines* its anchor (a line that starts with it, as Info
    manuals start an option's or a node's entry), else the first page that mentions it."""

    def norm(text: str) -> str:
        return " ".join(text.split())

    for question in questions:
        if question.get("doc") and "page" not in question:
            anchor = question["anchor"]
            texts = pages[question["doc"]]
            starts = re.compile(r"^[\s'\u2018\u2019\"*-]*" + re.escape(anchor), re.M)
            defining = [i + 1 for i, text in enumerate(texts) if starts.search(text)]
            found = defining or [i + 1 for i, text in enumerate(texts) if norm(anchor) in norm(text)]
            if not found:
                raise SystemExit(f"anchor {anchor!r} not found in {question['doc']}")
            question["page"] = found[0]


def rank(results: list[tuple[str, int]], doc: str, page: int) -> int | None:
    for position, key in enumerate(results, start=1):
        if key == (doc, page):
            return position
    return None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "hit@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "hit@10": sum(r is not None and r <= 10 for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
    }


SECOND_WEIGHTS: list[float] = [0.0]


def page_order(hits: list[Any], second: float) -> list[tuple[str, int]]:
    """Pages best first by their best chunk's score plus `second` times their second-best chunk's."""
    scores: dict[tuple[str, int], list[float]] = {}
    for hit in hits:
        scores.setdefault((str(hit.payload["document_id"]), int(hit.payload["page"])), []).append(hit.score)
    value = {key: s[0] + second * (s[1] if len(s) > 1 else 0.0) for key, s in scores.items()}
    return sorted(value, key=lambda key: -value[key])


def collapse(keys: list[tuple[str, int]], k: int) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for key in keys:
        if key not in seen:
            seen.append(key)
        if len(seen) == k:
            break
    return seen


class CachedEmbedder:
    """The configured embedder with a disk cache (--cache), so that sweeping fusion settings re-embeds nothing."""

    def __init__(self, inner: Any, path: Path | None) -> None:
        import pickle

        self.inner, self.path = inner, path
        self.name, self.dimension = inner.name, inner.dimension
        # A cache file this bench wrote itself on this machine.
        self.known: dict[str, list[float]] = pickle.loads(path.read_bytes()) if path and path.exists() else {}  # noqa: S301

    def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if "d:" + t not in self.known]
        for start in range(0, len(missing), 32):
            batch = missing[start : start + 32]
            for text, vector in zip(batch, self.inner.embed(batch), strict=True):
                self.known["d:" + text] = list(vector)
        return [self.known["d:" + t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if "q:" + text not in self.known:
            self.known["q:" + text] = list(self.inner.embed_query(text))
        return self.known["q:" + text]

    def save(self) -> None:
        import pickle

        if self.path:
            self.path.write_bytes(pickle.dumps(self.known))


#: Index variants: what each chunk's dense and lexical vectors are computed from.
VARIANTS: dict[str, dict[str, Any]] = {
    # Before issue 13's second round: chunk text alone on both sides, BM25 b 0.75.
    "plain": {"dense": False, "lexical": False, "section": False, "b": 0.75},
    "title": {"dense": True, "lexical": True, "section": False, "b": 0.75},
    "context-b0.75": {"dense": True, "lexical": True, "section": True, "b": 0.75},
    "context-dense": {"dense": True, "lexical": False, "section": True},
    # What ingestion does now: title and section heading on both sides, the lexical module's k1 and b.
    "context": {"dense": True, "lexical": True, "section": True},
    "context-b0.5": {"dense": True, "lexical": True, "section": True, "b": 0.5},
    "context-k0.9": {"dense": True, "lexical": True, "section": True, "k1": 0.9, "b": 0.4},
}


def fusion_modes(weights: list[float], saturations: list[float], normalizations: list[str]) -> dict[str, Any]:
    from aiteacher.vectors import Fusion

    default = Fusion()
    modes: dict[str, Any] = {"dense": ("dense", None), "lexical": ("lexical", None)}
    modes[f"hybrid (default {describe(default)})"] = ("hybrid", default)
    for weight in weights:
        for normalize in normalizations:
            for saturation in saturations if normalize == "saturation" else [default.saturation]:
                fusion = Fusion(dense_weight=weight, saturation=saturation, normalize=normalize)  # type: ignore[arg-type]
                modes[f"hybrid {describe(fusion)}"] = ("hybrid", fusion)
    for weight in (0.3, 0.5):
        modes[f"hybrid rrf w={weight}"] = ("hybrid", Fusion(method="rrf", dense_weight=weight))
    return modes


def describe(fusion: Any) -> str:
    if fusion.normalize == "saturation":
        return f"w={fusion.dense_weight} s={fusion.saturation:g}"
    return f"w={fusion.dense_weight} {fusion.normalize}"


def run_set(
    label: str,
    pdfs: dict[str, bytes],
    questions: list[dict[str, Any]],
    modes: dict[str, Any],
    variants: list[str],
    cache: Path | None,
    dump: Path | None = None,
) -> dict:
    import numpy as np

    from aiteacher.embeddings import get_embedder
    from aiteacher.ingestion.chunking import chunk_pages, embedding_text
    from aiteacher.ingestion.pdf import PdfLimits, extract_pages
    from aiteacher.text import context_text
    from aiteacher.vectors import EdgeStore, VectorPoint, chunk_point_id
    from aiteacher.vectors.lexical import document_vector, query_vector

    embedder = CachedEmbedder(get_embedder(), cache)
    limits = PdfLimits(max_bytes=100_000_000, max_pages=2000, max_decompressed_bytes=500_000_000)
    extracted = {name: extract_pages(data, limits) for name, data in pdfs.items()}
    # The title rule of the app: the PDF's own title, else one made from the file name.
    titles = {
        name: ex.title or re.sub(r"[-_]+", " ", name.rsplit(".", 1)[0]).strip().capitalize()
        for name, ex in extracted.items()
    }
    page_texts = {name: [p.text for p in ex.pages] for name, ex in extracted.items()}
    gold_pages(page_texts, questions)
    answerable = [q for q in questions if q.get("doc")]
    unanswerable = [q for q in questions if not q.get("doc")]
    queries = [(embedder.embed_query(q["q"]), query_vector(q["q"])) for q in questions]

    # The anchor: plain 1,000/200 windows over raw page text, exact cosine.
    windows = [
        (name, i + 1, text[s : s + 1000])
        for name, texts in page_texts.items()
        for i, text in enumerate(texts)
        for s in range(0, max(len(text) - 200, 1), 800)
        if text[s : s + 1000].strip()
    ]
    window_matrix = np.asarray(embedder.embed([w[2] for w in windows]), dtype=np.float32)
    base_mode = "baseline (window, dense)"
    ranks: dict[str, list[int | None]] = {base_mode: []}
    none_scores: dict[str, list[float]] = {base_mode: []}
    for question, (dense, _) in zip(questions, queries, strict=True):
        scores = window_matrix @ np.asarray(dense, dtype=np.float32)
        order = [(windows[i][0], windows[i][1]) for i in np.argsort(-scores)[:40]]
        if question.get("doc"):
            ranks[base_mode].append(rank(collapse(order, 10), question["doc"], question["page"]))
        else:
            none_scores[base_mode].append(float(scores.max()))

    for variant in variants:
        options = VARIANTS[variant]
        with tempfile.TemporaryDirectory() as tmp:
            store = EdgeStore(Path(tmp) / "edge", collection="bench")
            store.ensure_collection(embedder.name, embedder.dimension)
            for name, ex in extracted.items():
                title = titles[name]
                chunks = [
                    c if options["section"] else dataclasses.replace(c, section="") for c in chunk_pages(ex.pages)
                ]
                vectors = embedder.embed([embedding_text(title, c) if options["dense"] else c.text for c in chunks])
                store.upsert(
                    [
                        VectorPoint(
                            id=chunk_point_id(name, c.index),
                            vector=v,
                            payload={
                                "faculty_id": 1,
                                "semester_id": 1,
                                "course": "gnu",
                                "document_id": name,
                                "title": title,
                                "page": c.page,
                                "text": c.text,
                                "chunk_index": c.index,
                            },
                            lexical=document_vector(
                                c.text,
                                context=context_text(title, c.section) if options["lexical"] else "",
                                **{k: options[k] for k in ("k1", "b") if k in options},
                            ),
                        )
                        for c, v in zip(chunks, vectors, strict=True)
                    ]
                )
            for mode, (kind, fusion) in modes.items():
                key_name = f"{variant}: {mode}"
                for question, (dense, lexical) in zip(questions, queries, strict=True):
                    hits = store.search(
                        dense if kind != "lexical" else None,
                        lexical=lexical if kind != "dense" else None,
                        filters={"faculty_id": 1},
                        limit=40,
                        fusion=fusion,
                    )
                    for second in SECOND_WEIGHTS:
                        name = key_name if not second else f"{key_name} +{second}x2nd"
                        ranks.setdefault(name, [])
                        none_scores.setdefault(name, [])
                        keys = page_order(hits, second)[:10]
                        if question.get("doc"):
                            ranks[name].append(rank(keys, question["doc"], question["page"]))
                        else:
                            none_scores[name].append(hits[0].score if hits else 0.0)
            store.close()
    embedder.save()

    table = {mode: metrics(r) for mode, r in ranks.items()}
    base = table[base_mode]
    competitor_ranks = (
        {
            mode: metrics([r for r, q in zip(ranks[mode], answerable, strict=True) if q.get("competitors")])
            for mode in ranks
        }
        if any(q.get("competitors") for q in answerable)
        else {}
    )
    rows = []
    for mode, m in table.items():
        ratio = {k: (m[k] / base[k] if base[k] else float("nan")) for k in m}
        rows.append(
            [mode]
            + [f"{m[k]:.3f} ({ratio[k]:.2f}x)" for k in ("hit@1", "hit@5", "hit@10", "mrr")]
            + [f"{sum(none_scores[mode]) / len(none_scores[mode]):.3f}" if none_scores[mode] else "-"]
        )
    print(f"\n{label}: {len(pdfs)} documents, {len(answerable)} answerable, {len(unanswerable)} unanswerable")
    print_table(["mode", "hit@1 (x base)", "hit@5", "hit@10", "MRR", "top score, unanswerable"], rows)
    if dump:
        dump.write_text(json.dumps({"questions": [q["q"] for q in answerable], "ranks": ranks}, indent=0))
    return {
        "set": label,
        "documents": len(pdfs),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "metrics": table,
        "competitor_metrics": competitor_ranks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("gnu", "eval", "both"), default="both")
    parser.add_argument("--weights", default="", help="extra dense weights to sweep, e.g. 0.3,0.5,0.7")
    parser.add_argument("--saturations", default="6", help="BM25 saturation constants to sweep with --weights")
    parser.add_argument(
        "--normalize", default="saturation", help="score normalisations to sweep with --weights: saturation,minmax,dbsf"
    )
    parser.add_argument("--variants", default="plain,context", help=f"index variants: {','.join(VARIANTS)}")
    parser.add_argument("--second", default="0", help="page score = best + X * second-best chunk; sweep e.g. 0,0.5")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache file (for sweeps)")
    parser.add_argument("--dump", type=Path, default=None, help="write per-question ranks to FILE.<set>.json")
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",") if w]
    saturations = [float(s) for s in args.saturations.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]
    SECOND_WEIGHTS[:] = [float(w) for w in args.second.split(",")]
    modes = fusion_modes(weights, saturations, [n for n in args.normalize.split(",") if n])
    out = []
    if args.set in ("gnu", "both"):
        out.append(
            run_set(
                "GNU manuals",
                *gnu_corpus(),
                modes,
                variants,
                args.cache and args.cache.with_suffix(".gnu.pkl"),
                args.dump and args.dump.with_suffix(".gnu.json"),
            )
        )
    if args.set in ("eval", "both"):
        out.append(
            run_set(
                "../shared/eval",
                *eval_corpus(args.eval_dir),
                modes,
                variants,
                args.cache and args.cache.with_suffix(".eval.pkl"),
                args.dump and args.dump.with_suffix(".eval.json"),
            )
        )
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
