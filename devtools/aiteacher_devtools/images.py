"""What a function image installs, built the way the template's Dockerfile builds it: the `aiteacher` wheel
of shared/ with the function's EXTRAS (stack.yml build_args) and uvicorn, pinned by shared/requirements.lock,
into a fresh venv with uv. .ci/ship_check.py runs the functions from these venvs; tests/deploy checks
that none of them holds this package (devtools/ is never copied into a build context)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from aiteacher_devtools.manifests import WORKER_EXTRAS, Stack

UVICORN = "uvicorn>=0.32,<1"  # the Dockerfile's UVICORN build argument


def uv() -> str:
    return shutil.which("uv") or str(Path(sys.executable).parent / "uv")


def normalized(extras: str) -> str:
    return ",".join(sorted({part.strip() for part in extras.split(",") if part.strip()}))


def extras_sets(stack: Stack) -> set[str]:
    """Every distinct EXTRAS of stack.yml's functions, and the worker image's."""
    return {normalized(spec.extras) for spec in stack.specs} | {normalized(WORKER_EXTRAS)}


def build_wheel(root: Path, out_dir: Path) -> Path:
    """The shared library's wheel (what `/build/shared` installs in the Dockerfile)."""
    subprocess.run([uv(), "build", "--wheel", "--quiet", "--out-dir", str(out_dir), str(root / "shared")], check=True)
    return next(out_dir.glob("aiteacher-*.whl"))


def install_set(wheel: Path, extras: str, venv: Path, lock: Path | None = None) -> Path:
    """A new venv at `venv` with the wheel[extras] and uvicorn, as the image's build stage installs them."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    command = [
        uv(),
        "pip",
        "install",
        "--quiet",
        "--python",
        str(venv / "bin" / "python"),
        f"{wheel}[{extras}]" if extras else str(wheel),
        UVICORN,
    ]
    if lock is not None and lock.is_file():
        command += ["--constraints", str(lock)]
    subprocess.run(command, check=True)
    return venv


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def distributions(venv: Path) -> set[str]:
    """Normalized names of the distributions installed in `venv`."""
    names = set()
    for info in site_packages(venv).glob("*.dist-info"):
        names.add(info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-"))
    return names
