"""The shape of each domain: files, lines, `Any` uses and the largest module (issue 9's before/after table).

A domain row counts `shared/aiteacher/<domain>/` plus the function handlers that serve it; the platform row
is every other module of `shared/aiteacher/`. "Any (bare)" counts annotations that are exactly `Any`
(a parameter, a return or a variable); "Any (all)" counts every use of the name, `dict[str, Any]` included.

    .venv/bin/python bench/domain_shape.py            # a markdown table
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "shared" / "aiteacher"
FUNCTIONS = ROOT / "functions"

# The function handlers that serve each domain (stack.yml's list, grouped by the service they call).
DOMAINS: dict[str, tuple[str, ...]] = {
    "identity": ("auth-register", "auth-login", "auth-logout", "auth-refresh", "me", "users"),
    "academics": ("faculties",),
    "curriculum": ("ingest", "document", "search", "object-created"),
    "exams": ("exam-generate", "exam"),
    "tutor": ("chat", "chat-session"),
}


@dataclass
class Row:
    files: int = 0
    lines: int = 0
    any_bare: int = 0
    any_all: int = 0
    modules: list[tuple[int, str]] = field(default_factory=list)

    def add(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        bare, total = count_any(text)
        self.files += 1
        self.lines += lines
        self.any_bare += bare
        self.any_all += total
        self.modules.append((lines, str(path.relative_to(ROOT))))

    @property
    def largest(self) -> str:
        if not self.modules:
            return "-"
        lines, name = max(self.modules)
        return f"{name.removeprefix('shared/aiteacher/')} ({lines})"


def is_any(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "Any"
    if isinstance(node, ast.Attribute):
        return node.attr == "Any"
    if isinstance(node, ast.Constant):
        return node.value == "Any"
    return False


def count_any(text: str) -> tuple[int, int]:
    """(annotations that are exactly `Any`, every use of `Any` in annotations and expressions)."""
    tree = ast.parse(text)
    bare = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            bare += sum(is_any(argument.annotation) for argument in every)
            bare += is_any(node.returns)
        elif isinstance(node, ast.AnnAssign):
            bare += is_any(node.annotation)
    total = sum(
        1
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any") or (isinstance(node, ast.Attribute) and node.attr == "Any")
    )
    # String annotations (`"Any"`) are rare here; count them as uses too.
    total += sum(1 for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == "Any")
    return bare, total


def measure() -> dict[str, Row]:
    rows: dict[str, Row] = {name: Row() for name in DOMAINS}
    rows["platform"] = Row()
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(LIBRARY).parts
        rows[parts[0] if len(parts) > 1 and parts[0] in DOMAINS else "platform"].add(path)
    for domain, functions in DOMAINS.items():
        for function in functions:
            handler = FUNCTIONS / function / "handler.py"
            if handler.exists():
                rows[domain].add(handler)
    return rows


def main() -> int:
    rows = measure()
    print("| domain | files | lines | Any (bare) | Any (all) | largest module |")
    print("|---|---:|---:|---:|---:|---|")
    for name, row in rows.items():
        print(f"| {name} | {row.files} | {row.lines} | {row.any_bare} | {row.any_all} | {row.largest} |")
    total = Row()
    for row in rows.values():
        total.files += row.files
        total.lines += row.lines
        total.any_bare += row.any_bare
        total.any_all += row.any_all
        total.modules += row.modules
    print(f"| **all** | {total.files} | {total.lines} | {total.any_bare} | {total.any_all} | {total.largest} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
