"""Bucket layout: `<faculty code>/<semester number>/<course>/<name>` (e.g. `eng/3/algorithms/lecture-01.pdf`;
.pptx, .docx, .md and .html files too)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ObjectPlacement:
    faculty_code: str
    semester_number: int
    course: str
    name: str


class KeyLayoutError(ValueError):
    pass


def slug(text: str, fallback: str = "untitled") -> str:
    value = _SLUG.sub("-", text.lower()).strip("-")[:80]
    return value or fallback


def parse_key(key: str) -> ObjectPlacement:
    parts = [part for part in key.split("/") if part]
    if len(parts) != 4:
        raise KeyLayoutError(f"The key '{key}' does not follow <faculty code>/<semester number>/<course>/<name>.pdf")
    faculty, semester, course, name = parts
    # ASCII digits only ("³".isdigit() is true, int("³") fails) and a bounded number (a database integer).
    if not (semester.isascii() and semester.isdigit() and len(semester) <= 3):
        raise KeyLayoutError(f"The key '{key}' names semester '{semester[:20]}', which is not a number")
    if len(faculty) > 16 or len(course) > 100:
        raise KeyLayoutError(f"The key '{key[:200]}' has a faculty code or course name that is too long")
    return ObjectPlacement(faculty.lower(), int(semester), course, name)


def title_from_name(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or "Untitled"


def upload_key(
    faculty_code: str, semester_number: int, course: str, document_id: str, filename: str, suffix: str = ".pdf"
) -> str:
    name = slug(filename.rsplit(".", 1)[0])
    return f"{faculty_code}/{semester_number}/{slug(course, 'course')}/{name}-{document_id[:8]}{suffix}"
