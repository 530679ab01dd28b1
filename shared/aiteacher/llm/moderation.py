"""Offline moderation: a small, deliberately conservative list of phrases per category, matched on word
boundaries, case-insensitively.

It targets intent (threats, self-harm statements, insults, sexual content requests) rather than topics,
so course material about wars, murders in history or human reproduction is not flagged. Category names
follow OpenAI's moderation categories so callers can treat both providers alike.
"""

from __future__ import annotations

import re
from typing import Final

from aiteacher.llm.base import ModerationResult

_PRONOUN = r"(?:you|u|him|her|them|everyone|everybody|people|my (?:teacher|professor|lecturer|classmates?))"

PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "violence": (
        rf"(?:kill|murder|shoot|stab|strangle|behead|beat up|hurt) {_PRONOUN}",
        r"(?:i(?:'m| am)? (?:going|gonna) to|i will|i'll|i want to) (?:kill|murder|shoot|stab|attack|hurt)"
        r"(?! (?:myself|me)\b)",
        r"(?:make|build|plant) a (?:pipe )?bomb",
        r"blow up (?:the|a|my|our) (?:school|university|campus|class|building)",
        r"school shooting",
        r"mass shooting",
    ),
    "self-harm": (
        r"kill(?:ing)? myself",
        r"(?:end|take) my (?:own )?life",
        r"(?:want|wanna|going) to die",
        r"suicid(?:e|al)",
        r"self[- ]harm(?:ing)?",
        r"(?:cut|cutting|hurt|hurting|harm|harming) myself",
        r"no reason to live",
    ),
    "harassment": (
        r"fuck (?:you|off|u)",
        r"(?:stupid|dumb|fucking) (?:bitch|idiot|moron|retard)",
        r"(?:you(?:'re| are)|ur) (?:an? )?(?:idiot|moron|retard|loser|worthless|pathetic)",
        r"retard(?:ed)?",
        r"piece of shit",
        r"kill yourself",
        r"kys",
        r"go die",
    ),
    "sexual": (
        r"porn(?:o|ography|hub)?",
        r"(?:send|sending) (?:me )?nudes",
        r"(?:send|show) (?:me )?(?:naked|nude) (?:pics|pictures|photos)",
        r"sext(?:ing)?",
        r"blow ?job",
        r"hentai",
        r"(?:have|want) sex with (?:you|me)",
    ),
}

_COMPILED: Final[dict[str, re.Pattern[str]]] = {
    category: re.compile(r"(?<![\w'])(?:" + "|".join(patterns) + r")(?![\w'])", re.IGNORECASE)
    for category, patterns in PATTERNS.items()
}


def moderate_offline(text: str) -> ModerationResult:
    """Flag `text` when any category's phrase list matches it."""
    normalized = re.sub(r"\s+", " ", text.replace("’", "'"))
    categories = [category for category, pattern in _COMPILED.items() if pattern.search(normalized)]
    return ModerationResult(flagged=bool(categories), categories=categories)
