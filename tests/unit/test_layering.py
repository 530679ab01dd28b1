"""The platform modules depend one way: no import loop among them, and no platform module imports a domain.

Imports are read from the source (function-local ones included), so a lazy import counts as much as a
top-level one: a loop hidden inside a function still couples the modules. A string naming a domain module
(an `importlib` import in disguise) counts too.

The layers (docs/architecture.md):
- **platform** (`PLATFORM` below): what any domain may build on; it imports no domain. Where the platform
  needs a domain's answer it asks a port the domain provides (`aiteacher.accounts`, wired by an entry point)
  or a registry the domain fills (`aiteacher.jobs.JOBS`, `aiteacher.registry.on_reset`);
- **domains** (`DOMAINS`): `identity`, `academics`, `curriculum`, `exams`, `tutor`, `notifications`;
- **composition and tooling** (everything else: `cli`, `seed`, `reconcile`, `sqs_forward`, the dev server,
  gateway and manifests): wires domains together, may import anything.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aiteacher

PACKAGE = Path(aiteacher.__file__).parent
DOMAINS = ("academics", "curriculum", "exams", "identity", "tutor", "notifications")


def imported_modules(module: str) -> set[str]:
    """Every `aiteacher.*` module `module` imports anywhere in its source."""
    relative = Path(*module.split(".")[1:])
    path = PACKAGE / relative.with_suffix(".py")
    if not path.exists():
        path = PACKAGE / relative / "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("aiteacher."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "aiteacher":
                found.update(f"aiteacher.{alias.name}" for alias in node.names)
            elif node.module.startswith("aiteacher."):
                found.add(node.module)
    return found


def test_cache_config_and_registry_import_each_other_in_one_direction() -> None:
    platform = {"aiteacher.cache", "aiteacher.config", "aiteacher.registry"}
    edges = {module: imported_modules(module) & platform for module in platform}
    assert "aiteacher.cache" not in edges["aiteacher.registry"]
    assert "aiteacher.cache" not in edges["aiteacher.config"]
    assert edges["aiteacher.registry"] == set()  # the bottom layer: others register hooks with it
    for module, targets in edges.items():
        for target in targets:
            assert module not in edges[target], f"import loop {module} <-> {target}"


def test_registry_reset_runs_the_cache_hook_without_importing_cache() -> None:
    from aiteacher import cache, registry
    from aiteacher.config import reset_caches

    before = cache._async_generation[0]
    reset_caches()
    assert cache._async_generation[0] == before + 1  # registered through registry.on_reset

    calls: list[str] = []
    hook = registry.on_reset(lambda: calls.append("reset"))
    try:
        registry.on_reset(hook)  # registering twice runs it once
        registry.reset()
        assert calls == ["reset"]
    finally:
        registry._reset_hooks.remove(hook)


#: Platform packages (every module under them) and modules.
PLATFORM_PACKAGES = ("db", "embeddings", "ingestion", "llm", "security", "vectors")
PLATFORM_MODULES = (
    "access",
    "accounts",
    "audit",
    "bounds",
    "cache",
    "config",
    "enums",
    "errors",
    "jobs",
    "observability",
    "openai_client",
    "progress",
    "proxies",
    "push",
    "queue",
    "ratelimit",
    "registry",
    "replies",
    "storage",
    "web",
)


def platform_modules() -> list[str]:
    modules = [f"aiteacher.{name}" for name in PLATFORM_MODULES]
    for package in PLATFORM_PACKAGES:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            parts = path.relative_to(PACKAGE).with_suffix("").parts
            modules.append("aiteacher." + ".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _source(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    path = PACKAGE / relative.with_suffix(".py")
    return path if path.exists() else PACKAGE / relative / "__init__.py"


def domain_names_in_strings(module: str) -> set[str]:
    """String constants that are a domain module's dotted path (`"aiteacher.curriculum.jobs"`, an
    `importlib` or RQ target); prose in docstrings may name them."""
    dotted = re.compile(rf"aiteacher\.({'|'.join(DOMAINS)})(\.\w+)*(:\w+)?")
    return {
        node.value
        for node in ast.walk(ast.parse(_source(module).read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and dotted.fullmatch(node.value.strip())
    }


def test_the_platform_list_names_real_modules_and_covers_the_platform() -> None:
    for module in platform_modules():
        assert _source(module).exists(), module
    assert "aiteacher.web" in platform_modules() and "aiteacher.vectors.edge" in platform_modules()


def test_no_platform_module_imports_a_domain() -> None:
    offenders = {}
    for module in platform_modules():
        domains = {name for name in imported_modules(module) if name.split(".")[1] in DOMAINS}
        named = domain_names_in_strings(module)
        if domains or named:
            offenders[module] = sorted(domains | named)
    assert offenders == {}


def test_the_web_layer_asks_the_account_port_and_identity_provides_it() -> None:
    from aiteacher import accounts
    from aiteacher.identity import profiles

    accounts.use(None)  # read the entry point afresh
    assert accounts.provider() is profiles
    for name in ("cache_key", "accept_prefetched", "current", "admit_token"):
        assert callable(getattr(profiles, name)), name


def test_without_an_account_provider_authenticated_requests_fail_closed(monkeypatch) -> None:
    import pytest

    from aiteacher import accounts
    from aiteacher.errors import ServiceUnavailable

    monkeypatch.setattr(accounts, "DISTRIBUTION", "aiteacher-not-installed")
    accounts.use(None)
    try:
        with pytest.raises(ServiceUnavailable, match="No account provider"):
            accounts.provider()
    finally:
        monkeypatch.undo()
        accounts.use(None)
    assert accounts.provider() is not None


def test_db_never_imports_a_domain() -> None:
    modules = [
        "aiteacher.db",
        *(f"aiteacher.db.{path.stem}" for path in (PACKAGE / "db").glob("*.py") if path.stem != "__init__"),
    ]
    for module in modules:
        domains = {name for name in imported_modules(module) if name.split(".")[1] in DOMAINS}
        assert domains == set(), f"{module} imports {sorted(domains)}"


def test_migrate_and_seed_lives_outside_db() -> None:
    from aiteacher.db import migrate
    from aiteacher.seed import migrate_and_seed

    assert not hasattr(migrate, "migrate_and_seed")
    assert {"aiteacher.academics.service", "aiteacher.identity.service"} <= imported_modules("aiteacher.seed")
    assert callable(migrate_and_seed)


def test_one_text_engine_is_read_by_every_reader_of_words() -> None:
    """One tokenizer, stemmer and sentence splitter (issue 9): `aiteacher.text` imports no other aiteacher module,
    and PDF cleanup, chunking, the lexical index, the offline provider, grading and grounding all use it."""
    source = (PACKAGE / "text.py").read_text(encoding="utf-8")
    assert imported_modules("aiteacher.text") == set()
    top_level = {
        alias.name.split(".")[0]
        for node in ast.parse(source).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert top_level <= {"__future__", "hashlib", "re", "unicodedata", "functools", "typing"}  # stdlib only
    readers = (
        "aiteacher.ingestion.pdf",
        "aiteacher.ingestion.chunking",
        "aiteacher.vectors.lexical",
        "aiteacher.llm.text",
        "aiteacher.llm.offline",
        "aiteacher.exams.grading",
        "aiteacher.tutor.grounding",
    )
    for reader in readers:
        assert "aiteacher.text" in imported_modules(reader), reader


SQL_DOMAINS = ("identity", "academics", "curriculum", "exams", "tutor")
STATEMENT_CONSTRUCTORS = {"select", "update", "insert", "delete"}
SESSION_STATEMENT_METHODS = {"query", "execute"}


def sql_statements_outside_repository(path: Path) -> list[str]:
    """Each SQL statement built or run in this module: a bare (or `sqlalchemy.`-qualified) `select`/`update`/
    `insert`/`delete` call, or `session.query(...)`/`session.execute(...)`. ORM unit-of-work calls on a loaded
    row (`session.delete(row)`, `session.get`) and `dict.update` are not statements."""
    found: list[str] = []
    calls = [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Call)]
    for node in sorted(calls, key=lambda call: (call.lineno, call.col_offset)):
        func = node.func
        if isinstance(func, ast.Name) and func.id in STATEMENT_CONSTRUCTORS:
            found.append(f"{path.name}:{node.lineno} {func.id}(")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, name = func.value.id, func.attr
            if owner in {"sqlalchemy", "sa"} and name in STATEMENT_CONSTRUCTORS:
                found.append(f"{path.name}:{node.lineno} {owner}.{name}(")
            elif owner == "session" and name in SESSION_STATEMENT_METHODS:
                found.append(f"{path.name}:{node.lineno} session.{name}(")
    return found


def test_the_detector_sees_each_kind_of_statement(tmp_path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(session, progress, doc):\n"
        "    session.execute(update(T).values(a=1))\n"
        "    session.scalars(select(T))\n"
        "    session.query(T.id).all()\n"
        "    sa.delete(T)\n"
        "    session.delete(doc)\n"
        "    progress.update('x', 1, 2)\n",
        encoding="utf-8",
    )
    assert [hit.split(" ", 1)[1] for hit in sql_statements_outside_repository(sample)] == [
        "session.execute(",
        "update(",
        "select(",
        "session.query(",
        "sa.delete(",
    ]


def test_domain_sql_lives_in_the_domain_repository() -> None:
    """A domain's services and jobs call its `repository.py`; no SQL statement is built or run elsewhere."""
    offenders = []
    for domain in SQL_DOMAINS:
        folder = PACKAGE / domain
        assert (folder / "repository.py").exists(), domain
        for path in sorted(folder.glob("*.py")):
            if path.name != "repository.py":
                offenders += [f"{domain}/{hit}" for hit in sql_statements_outside_repository(path)]
    assert offenders == []
