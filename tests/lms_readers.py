"""Readers for the GIFT and Aiken formats, written from Moodle's format documentation and independent of
the exporter's code (no maintained GIFT parser exists on PyPI: pygiftparser 1.1 and pygiftparserrgmf 0.0.5
both mis-read escaped specials; gift-to-moodlexml needs Python 3.14).

GIFT (docs.moodle.org/en/GIFT_format): `::name::text{answers}`; inside the braces `=` starts a correct
answer, `~` a wrong one, `#` its feedback, `####` the general feedback; a backslash escapes `~ = # { } :`
and itself, and `\\n` is a line break.
"""

from __future__ import annotations

import re
from typing import Any

SPECIALS = set("~=#{}:\\")


def _chars(text: str) -> list[tuple[str, bool]]:
    """(character, escaped?) pairs."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "n":
                out.append(("\n", True))
            elif nxt in SPECIALS:
                out.append((nxt, True))
            else:
                raise ValueError(f"unknown GIFT escape \\{nxt}")
            i += 2
        else:
            out.append((text[i], False))
            i += 1
    return out


def _text(chars: list[tuple[str, bool]]) -> str:
    return "".join(c for c, _ in chars).strip()


def _split_at(chars: list[tuple[str, bool]], marker: str) -> list[list[tuple[str, bool]]]:
    parts: list[list[tuple[str, bool]]] = [[]]
    for char, escaped in chars:
        if char == marker and not escaped:
            parts.append([])
        else:
            parts[-1].append((char, escaped))
    return parts


def read_gift(source: str) -> list[dict[str, Any]]:
    questions = []
    for block in re.split(r"\n\s*\n", source.strip()):
        lines = [line for line in block.split("\n") if not line.lstrip().startswith("//")]
        chars = _chars("\n".join(lines).strip())
        if [c for c, _ in chars[:2]] != [":", ":"] or any(e for _, e in chars[:2]):
            raise ValueError("question without a ::name::")
        rest = chars[2:]
        end = next(i for i in range(len(rest) - 1) if rest[i] == (":", False) and rest[i + 1] == (":", False))
        name, rest = _text(rest[:end]), rest[end + 2 :]
        open_at = rest.index(("{", False))
        close_at = len(rest) - 1 - rest[::-1].index(("}", False))
        text, body = _text(rest[:open_at]), rest[open_at + 1 : close_at]
        if any(c in "{}" and not e for c, e in body):
            raise ValueError("unescaped brace inside an answer block")
        general = None
        flat = "".join("\0" if (c == "#" and not e) else "\1" for c, e in body)
        at = flat.find("\0" * 4)
        if at >= 0:
            general, body = _text(body[at + 4 :]), body[:at]
        options = []
        current: list[tuple[str, bool]] | None = None
        marks: list[str] = []
        for char, escaped in body:
            if char in "=~" and not escaped:
                if current is not None:
                    options.append(current)
                current, marks = [], [*marks, char]
            elif current is not None:
                current.append((char, escaped))
            elif not char.isspace():
                raise ValueError("text before the first answer")
        if current is not None:
            options.append(current)
        parsed = []
        for mark, option in zip(marks, options, strict=True):
            pieces = _split_at(option, "#")
            if len(pieces) > 2:
                raise ValueError("more than one feedback for an answer")
            parsed.append(
                {
                    "correct": mark == "=",
                    "text": _text(pieces[0]),
                    "feedback": _text(pieces[1]) if len(pieces) == 2 else None,
                }
            )
        questions.append({"name": name, "text": text, "options": parsed, "general_feedback": general})
    return questions


def read_aiken(source: str) -> list[dict[str, Any]]:
    questions = []
    for block in re.split(r"\n\s*\n", source.strip()):
        lines = block.split("\n")
        options, answer = [], None
        for line in lines[1:]:
            match = re.match(r"^([A-Z])[.)] (.*)$", line)
            if match and answer is None:
                assert match.group(1) == chr(ord("A") + len(options)), line
                options.append(match.group(2))
            elif line.startswith("ANSWER: "):
                answer = ord(line[len("ANSWER: ") :].strip()) - ord("A")
            else:
                raise ValueError(f"unexpected Aiken line {line!r}")
        questions.append({"text": lines[0], "options": options, "answer_index": answer})
    return questions
