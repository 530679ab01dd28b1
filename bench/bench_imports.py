"""Benchmark: import time of every function's handler module against `import fastapi`, each in a fresh
interpreter of the same virtualenv, in the same run.

    python bench/bench_imports.py [--runs 5] [--only NAME ...] [--explain] [--json] [--strict]

Cold start of a function is mostly its imports, and FastAPI is the floor every function pays. For each
function of stack.yml (`aiteacher_devtools.stack.functions()`), `functions/<name>/handler.py` is executed in a new
`python` process (time.perf_counter around the import, interpreter start-up excluded on both sides).
Every handler run is paired with an `import fastapi` run right next to it (order swapped run by run), so
a burst of load on a shared machine hits both; the ratio is the median over `--runs` pairs.
Goal: each handler <= 1.25x `import fastapi` (wall time). The CPU-time ratio (time.process_time in the
child) is printed too: it barely moves when other processes compete for the cores.

For the slowest function, every function that misses the goal (or all of them with --explain),
`python -X importtime` shows what the handler imports beyond `import fastapi`, grouped by the outermost
extra module, with the chain that imported it. A reference row (no goal) shows what a bare FastAPI app
with one route costs beyond `import fastapi`: FastAPI itself imports `pydantic.v1` when the first route
is registered. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from common import REPO, median, print_table

GOAL = 1.25
ANCHOR = "import fastapi"
MARKER = "-- bench_imports: timer starts --"
PRELUDE = f"import importlib.util, sys, time\nsys.stderr.write({MARKER!r} + '\\n')\n"
TIMED = (
    "t0, c0 = time.perf_counter(), time.process_time()\n{body}\n"
    "print(repr(time.perf_counter() - t0), repr(time.process_time() - c0))\n"
)
# Reference row (no goal): what any FastAPI app with one route costs beyond `import fastapi`.
HELLO_APP = (
    "from fastapi import FastAPI\n"
    "app = FastAPI()\n"
    "@app.get('/')\n"
    "def hello() -> dict[str, str]:\n"
    "    return {'hello': 'world'}"
)
REFERENCE = "(reference) FastAPI app, 1 route"
HANDLER_IMPORT = (
    "spec = importlib.util.spec_from_file_location({module!r}, {path!r})\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[{module!r}] = module\n"
    "spec.loader.exec_module(module)\n"
    "assert module.app is not None"
)


@dataclass(frozen=True)
class Target:
    name: str
    body: str  # the statements whose time is measured

    def code(self) -> str:
        return PRELUDE + TIMED.format(body=self.body)


def function_targets(only: list[str] | None) -> list[Target]:
    from aiteacher_devtools.stack import functions

    targets = []
    for spec in functions():
        if only and spec.name not in only:
            continue
        module = "aiteacher_fn_" + spec.name.replace("-", "_")  # the name aiteacher_devtools.stack.load_app uses
        body = HANDLER_IMPORT.format(module=module, path=str(spec.handler_dir / "handler.py"))
        targets.append(Target(spec.name, body))
    return targets


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches exist in a built image, too
    return env


def run_once(target: Target, *, importtime: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stderr) of the timed import in a fresh interpreter."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", target.code()]
    done = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{target.name}: exit {done.returncode}\n{done.stderr.strip()[-2000:]}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu), done.stderr


# --- -X importtime analysis -----------------------------------------------------------------------


@dataclass
class ImportLine:
    name: str
    self_us: int
    cumulative_us: int
    depth: int
    parent: int | None = None


def parse_importtime(stderr: str, *, after_marker: bool = True) -> list[ImportLine]:
    """`import time: self | cumulative | name` lines after the marker (interpreter start-up excluded);
    children come before their parent (the next line one level up)."""
    lines: list[ImportLine] = []
    measured = stderr.partition(MARKER)[2] if after_marker else stderr
    for raw in measured.splitlines():
        if not raw.startswith("import time:") or "|" not in raw:
            continue
        self_part, cumulative_part, name_part = raw.removeprefix("import time:").split("|", 2)
        if not self_part.strip().isdigit():
            continue  # the header line
        depth = (len(name_part) - len(name_part.lstrip(" ")) - 1) // 2
        lines.append(ImportLine(name_part.strip(), int(self_part), int(cumulative_part), depth))
    for index, line in enumerate(lines):
        for later in range(index + 1, len(lines)):
            if lines[later].depth < line.depth:
                line.parent = later
                break
    return lines


def chain(lines: list[ImportLine], index: int, limit: int = 4) -> str:
    names = []
    current: int | None = lines[index].parent
    while current is not None and len(names) < limit:
        names.append(lines[current].name)
        current = lines[current].parent
    return " <- ".join(names) if names else "the handler (directly, or lazily while its code runs)"


def explain(target: Target, anchor_modules: set[str], top: int = 5) -> dict[str, Any]:
    """What the handler imports beyond `import fastapi`, by root: an extra module whose importer is not
    itself extra. Each root gets the self time of every extra module under it, and the chain that
    imported it. Also: the handler's time outside imports (app creation, route registration)."""
    total_s, _, stderr = run_once(target, importtime=True)
    lines = parse_importtime(stderr)
    extra = {index for index, line in enumerate(lines) if line.name not in anchor_modules}
    by_root: dict[int, int] = defaultdict(int)
    for index in extra:
        root = index
        while lines[root].parent is not None and lines[root].parent in extra:
            root = lines[root].parent  # type: ignore[assignment]
        by_root[root] += lines[index].self_us
    roots = sorted(by_root.items(), key=lambda item: item[1], reverse=True)[:top]
    import_us = sum(line.self_us for line in lines)
    modules = sorted(extra, key=lambda index: lines[index].self_us, reverse=True)[:top]
    return {
        "importtime_total_ms": round(total_s * 1000, 1),
        "all_imports_ms": round(import_us / 1000, 1),
        "outside_imports_ms": round(max(0.0, total_s * 1000 - import_us / 1000), 1),
        "extra_import_ms": round(sum(lines[index].self_us for index in extra) / 1000, 1),
        "extra_modules": len(extra),
        "roots": [
            {"module": lines[index].name, "extra_ms": round(us / 1000, 1), "imported_by": chain(lines, index)}
            for index, us in roots
        ],
        "modules": [
            {"module": lines[index].name, "self_ms": round(lines[index].self_us / 1000, 1)} for index in modules
        ],
    }


def anchor_module_names() -> set[str]:
    """Every module an `import fastapi` process imports, start-up included."""
    _, _, stderr = run_once(Target(ANCHOR, "import fastapi"), importtime=True)
    return {line.name for line in parse_importtime(stderr, after_marker=False)}


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="pairs per function (the median ratio is reported)")
    parser.add_argument("--only", nargs="*", help="function names (default: every function of stack.yml)")
    parser.add_argument("--explain", action="store_true", help="-X importtime breakdown for every function")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a function misses the goal")
    args = parser.parse_args(argv)

    anchor = Target(ANCHOR, "import fastapi")
    targets = [Target(REFERENCE, HELLO_APP), *function_targets(args.only)]
    errors: dict[str, str] = {}
    for target in [anchor, *targets]:  # warm-up: bytecode caches, page cache
        try:
            run_once(target)
        except RuntimeError as exc:
            errors[target.name] = str(exc)
    for name in (anchor.name, REFERENCE):
        if name in errors:
            raise SystemExit(errors[name])
    targets = [target for target in targets if target.name not in errors]

    wall: dict[str, list[float]] = {target.name: [] for target in [anchor, *targets]}
    cpu: dict[str, list[float]] = {target.name: [] for target in [anchor, *targets]}
    wall_ratios: dict[str, list[float]] = {target.name: [] for target in targets}
    cpu_ratios: dict[str, list[float]] = {target.name: [] for target in targets}
    for run in range(args.runs):
        for index, target in enumerate(targets):
            pair = (anchor, target) if (run + index) % 2 == 0 else (target, anchor)
            measured = {item.name: run_once(item)[:2] for item in pair}
            for name, (wall_s, cpu_s) in measured.items():
                wall[name].append(wall_s)
                cpu[name].append(cpu_s)
            wall_ratios[target.name].append(measured[target.name][0] / measured[anchor.name][0])
            cpu_ratios[target.name].append(measured[target.name][1] / measured[anchor.name][1])

    rows: list[dict[str, Any]] = []
    for target in targets:
        ratio = median(wall_ratios[target.name])
        rows.append(
            {
                "function": target.name,
                "median_ms": round(median(wall[target.name]) * 1000, 1),
                "min_ms": round(min(wall[target.name]) * 1000, 1),
                "cpu_ms": round(median(cpu[target.name]) * 1000, 1),
                "ratio": round(ratio, 3),
                "cpu_ratio": round(median(cpu_ratios[target.name]), 3),
                "met": ratio <= GOAL,
            }
        )
    reference = rows.pop(0)  # targets[0] is the reference app
    reference.pop("met")
    targets = targets[1:]
    anchor_modules: set[str] | None = None
    slowest = max(rows, key=lambda row: row["ratio"])["function"] if rows else None
    for row, target in zip(rows, targets, strict=True):
        if args.explain or not row["met"] or row["function"] == slowest:
            anchor_modules = anchor_modules or anchor_module_names()
            row["explain"] = explain(target, anchor_modules)

    result: dict[str, Any] = {
        "benchmark": "imports",
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "runs": args.runs,
        "goal": GOAL,
        "anchor": {
            "name": ANCHOR,
            "median_ms": round(median(wall[anchor.name]) * 1000, 1),
            "min_ms": round(min(wall[anchor.name]) * 1000, 1),
            "cpu_ms": round(median(cpu[anchor.name]) * 1000, 1),
        },
        "reference": reference,
        "functions": rows,
        "errors": errors,
        "goals_met": not errors and all(row["met"] for row in rows),
    }
    if not args.json:
        print_report(result)
    print(json.dumps(result))
    return 1 if args.strict and not result["goals_met"] else 0


def print_report(result: dict[str, Any]) -> None:
    anchor = result["anchor"]
    print(
        f"Import time, {result['date']}, {result['cpus']} CPUs, Python {result['python']}: {result['runs']} "
        f"fresh interpreters per function, each paired with an `import fastapi` run; ratio = median of pairs"
    )
    print(
        f"anchor: `{anchor['name']}` median {anchor['median_ms']} ms (min {anchor['min_ms']} ms, "
        f"CPU {anchor['cpu_ms']} ms); goal <= {GOAL}x\n"
    )
    rows = [
        [
            row["function"],
            row["median_ms"],
            row["min_ms"],
            row["cpu_ms"],
            f"{row['ratio']:.2f}x",
            f"{row['cpu_ratio']:.2f}x",
            ("met" if row["met"] else "NOT met") if "met" in row else "-",
        ]
        for row in [result["reference"], *result["functions"]]
    ]
    print_table(["function", "median ms", "min ms", "CPU ms", "ratio", "CPU ratio", "result"], rows)
    for name, error in result["errors"].items():
        print(f"\n{name}: could not be imported:\n{error}")
    for row in result["functions"]:
        if "explain" not in row:
            continue
        info = row["explain"]
        print(
            f"\n{row['function']} (-X importtime run: {info['importtime_total_ms']} ms, of which imports "
            f"{info['all_imports_ms']} ms, handler code outside imports {info['outside_imports_ms']} ms): "
            f"{info['extra_modules']} modules beyond `import fastapi`, {info['extra_import_ms']} ms"
        )
        for root in info["roots"]:
            print(f"  {root['module']:<34}{root['extra_ms']:>7} ms   imported by {root['imported_by']}")
    print(f"\nall goals met: {result['goals_met']}")


if __name__ == "__main__":
    sys.exit(main())
