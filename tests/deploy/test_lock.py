"""Pinned and reproducible: every dependency has an upper bound on its major, shared/requirements.lock pins
each one (with hashes) inside those bounds, and the image build, `make install` and CI install from it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "shared" / "pyproject.toml").read_text())["project"]
LOCK = (REPO / "shared" / "requirements.lock").read_text()
PINS = {canonicalize_name(m.group(1)): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", LOCK, re.M)}


def _requirements() -> list[Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        found += [Requirement(r) for r in extra if not r.startswith("aiteacher[")]
    return found


def test_every_dependency_has_an_upper_bound() -> None:
    unbounded = [str(r) for r in _requirements() if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert not unbounded, f"no upper bound: {unbounded}"


def test_the_lock_pins_every_dependency_within_its_bounds() -> None:
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in PINS, f"{name} is not in shared/requirements.lock: run `make lock`"
        assert requirement.specifier.contains(PINS[name], prereleases=True), (
            f"{name}=={PINS[name]} is outside {requirement.specifier}: run `make lock`"
        )


def test_every_pin_carries_hashes() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK.strip())
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9_.-]+==", LOCK, re.M)) > 50
    assert all("--hash=sha256:" in entry for entry in entries)


def test_image_build_and_install_use_the_lock() -> None:
    dockerfile = (REPO / "template" / "aiteacher-fastapi" / "Dockerfile").read_text()
    assert "--constraints /build/shared/requirements.lock" in dockerfile
    makefile = (REPO / "Makefile").read_text()
    assert "--constraints shared/requirements.lock" in makefile
    assert "shared/requirements.lock" in (REPO / ".ci" / "ship_check.py").read_text()
