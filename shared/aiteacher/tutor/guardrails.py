"""Guardrails enforced in code, before any model sees the message.

Academic integrity: requests to do assessed work are refused with guidance toward learning. The
patterns look for a request verb aimed at an assessed artefact, so "explain how merge sort works"
passes and "write my assignment on merge sort" does not.
"""

from __future__ import annotations

import re

_ASSESSED = (r"(?:exam|test|quiz|midterm|mid-term|final|assignment|homework|home-work|coursework|course-work|"
             r"essay|lab\s+report|report|project|thesis|dissertation|problem\s+set|worksheet|take-home)s?")
_INTEGRITY_PATTERNS = [
    rf"\b(?:give|send|tell|show|provide|share|leak)\s+(?:me|us)\s+(?:all\s+)?(?:the\s+)?(?:answers?|solutions?|answer\s+key)\b.*\b{_ASSESSED}\b",
    rf"\b(?:answers?|solutions?|answer\s+key)\s+(?:to|for|of)\s+(?:the|my|our|this|tomorrow'?s|today'?s|next\s+week'?s)?\s*(?:\w+\s+){{0,3}}{_ASSESSED}\b",
    rf"\b(?:write|do|complete|finish|solve|answer|take|sit|draft)\s+(?:my|our|this|the)\s+(?:\w+\s+){{0,3}}{_ASSESSED}\b(?:\s+for\s+me)?",
    rf"\b{_ASSESSED}\b.*\b(?:for\s+me|on\s+my\s+behalf|so\s+i\s+can\s+(?:submit|hand\s+it\s+in))\b",
]
_INTEGRITY = [re.compile(pattern, re.IGNORECASE) for pattern in _INTEGRITY_PATTERNS]

INTEGRITY_REPLY = (
    "I can't do assessed work for you or hand out answers to an exam or assignment - that wouldn't help you "
    "learn, and it would break your university's academic-integrity rules. I'm glad to help you get there "
    "yourself: tell me which concept is giving you trouble, or share your attempt, and I'll guide you step by step."
)
NOT_IN_MATERIAL_REPLY = (
    "I couldn't find this in your course material, so I won't guess. Try rephrasing with the terms your "
    "lecture uses, or ask about a topic from your course documents."
)
FLAGGED_REPLY = (
    "I can't help with that message. If you are going through something difficult, please reach out to your "
    "university's student support or counselling service - you don't have to handle it alone. "
    "Your faculty's staff have been notified so someone can follow up."
)


def is_integrity_violation(message: str) -> bool:
    text = " ".join(message.split())
    return any(pattern.search(text) for pattern in _INTEGRITY)


def normalize_question(message: str) -> str:
    return re.sub(r"[^\w\s]", "", " ".join(message.lower().split()))


_FOLLOW_UP = re.compile(
    r"^(?:and\s+|but\s+|so\s+|ok(?:ay)?[,.]?\s+|sorry[,.]?\s+|hmm+[,.]?\s+)*(?:"
    r"why\b|how\s+so\b|how\s+come\b|what\s+do\s+you\s+mean\b|what\s+does\s+that\s+mean\b|really\b|"
    r"i\s+(?:still\s+)?(?:do\s*n[o']?t|can'?t|cannot)\s+(?:get|understand|follow|see)\b|"
    r"i'?m\s+(?:still\s+)?(?:confused|lost|not\s+sure)\b|still\s+(?:confused|lost|unclear)\b|"
    r"(?:can|could|would)\s+you\s+(?:please\s+)?(?:give|show|explain|elaborate|clarify|say|rephrase|simplify|"
    r"break)\b|(?:give|show)\s+me\s+(?:an?\s+)?(?:example|another)\b|(?:an?\s+)?example\b|"
    r"explain\s+(?:it\s+|that\s+|this\s+)?(?:again|more|differently|simpler|further)\b|"
    r"(?:tell\s+me\s+)?more\b|go\s+on\b|elaborate\b|in\s+other\s+words\b|what\s+about\s+(?:it|that|this)\b)",
    re.IGNORECASE,
)


def is_follow_up(message: str) -> bool:
    """A turn about the previous answer ("why?", "I still don't get it", "can you give an example") rather
    than a new question: when it retrieves nothing of its own, the session's focus passages answer it."""
    text = " ".join(message.split())
    return len(text) <= 200 and bool(_FOLLOW_UP.match(text))
