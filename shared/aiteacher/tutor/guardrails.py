"""Guardrails enforced in code, before any model sees the message.

Academic integrity: requests to do assessed work are refused with guidance toward learning. The
patterns look for a request verb aimed at an assessed artefact, so "explain how merge sort works"
passes and "write my assignment on merge sort" does not.
"""

from __future__ import annotations

import re

# Assessed artefacts, in English and in the other languages students most often write in here.
_ASSESSED = (
    r"(?:exam|test|quiz|midterm|mid-term|final|assignment|homework|home-work|coursework|course-work|essay|"
    r"lab\s+report|report|project|thesis|dissertation|term\s+paper|paper|problem\s+set|worksheet|take-home|"
    r"assessment|graded\s+\w+|examen|prueba|tarea|deberes|ensayo|trabajo|tesis|devoirs?|contr[oô]le|partiel|"
    r"m[ée]moire|klausur|pr[üu]fung|hausarbeit|hausaufgaben?|aufsatz|abschlussarbeit|prova|exame|"
    r"trabalho(?:\s+de\s+casa)?|reda[çc][ãa]o|tese|esame|compit[oi]|tesina|tesi|verifica)(?:s|es|en)?"
)
# Asking to be handed the result: answers, solutions, keys.
_HANDOVER = (
    r"(?:answers?|solutions?|answer\s+keys?|model\s+answers?|marking\s+scheme|what\s+to\s+(?:put|write)|"
    r"what\s+should\s+i\s+(?:answer|put|write)|respuestas?|soluciones|r[ée]ponses?|corrig[ée]s?|l[öo]sungen|"
    r"antworten|respostas?|risposte|soluzioni)"
)
_DO = r"(?:write|do|complete|finish|solve|answer|take|sit|draft|generate|produce)"
_OWNER = r"(?:my|our|this|these|the|that)"
# Doing it in another language: an imperative aimed at an assessed artefact.
_DO_OTHER = (
    r"(?:escribe(?:me)?|haz(?:me)?|resuelve|redacta|fais|r[ée]dige|[ée]cris|r[ée]sous|schreib(?:e)?|"
    r"mach|l[öo]se|faz|escreve|resolve|scrivi|fai|fammi|risolvi)"
)
_SUBMIT = (
    r"(?:(?:so|that)\s+i\s+(?:can|could)\s+(?:submit|hand|turn|copy)|(?:i|we)\s+(?:can|could|will|'ll)\s+"
    r"(?:submit|hand\s+(?:it\s+)?in|turn\s+(?:it\s+)?in)|to\s+(?:submit|hand\s+in|turn\s+in)|under\s+my\s+name|"
    r"copy\s+(?:it|them)|para\s+entregar|pour\s+que\s+je\s+(?:la|le)\s+rende|[àa]\s+rendre|zum\s+abgeben|"
    r"per\s+consegnar)"
)
# Each rule is one pattern, or a pair "first ... then later second" (searched in two linear passes: a single
# `first.*second` regex backtracks quadratically on a long message full of matches).
_INTEGRITY_RULES: list[tuple[str, ...]] = [
    # "the answers to tomorrow's exam", "las respuestas del examen", "what to put on the graded quiz" ...
    (rf"\b{_HANDOVER}\b", rf"\b{_ASSESSED}\b"),
    (rf"\b{_ASSESSED}\b", rf"\b{_HANDOVER}\b"),
    # "write my assignment", "solve question 4 of my take-home exam", "take my online quiz"
    (rf"\b{_DO}\s+(?:(?!i\b|you\b|we\b)[\w'-]+\s+){{0,3}}{_OWNER}\s+(?:[\w'-]+\s+){{0,5}}{_ASSESSED}\b",),
    (rf"\b{_ASSESSED}\b", rf"\b(?:for\s+me|on\s+my\s+behalf|in\s+my\s+place|{_SUBMIT})"),
    (rf"\b{_ASSESSED}\b", r"\b(?:just|please|quickly)\s+(?:write|do|finish|complete|solve)\s+(?:it|this|them)\b"),
    # Another language: "escribe mi ensayo", "fais mon devoir", "mach meine Hausaufgaben"
    (rf"\b{_DO_OTHER}\b\s+(?:[\w'-]+\s+){{0,4}}{_ASSESSED}\b",),
    (rf"\b{_ASSESSED}\b", r"\b(?:f[üu]r\s+mich|[àa]\s+ma\s+place|por\s+m[íi]|per\s+me|para\s+mim)\b"),
    # Sitting an exam right now.
    (rf"\b(?:i'?m|i\s+am)\s+(?:in|taking|sitting|doing)\s+(?:the|an|my)\s+{_ASSESSED}\b", r"\b(?:now|quick)"),
]
_INTEGRITY = [tuple(re.compile(part, re.IGNORECASE) for part in rule) for rule in _INTEGRITY_RULES]
# Every rule names an assessed artefact: a message without one is let through after one search, not eight.
_ANY_ASSESSED = re.compile(rf"\b{_ASSESSED}\b", re.IGNORECASE)


def _holds(rule: tuple[re.Pattern[str], ...], text: str) -> bool:
    first = rule[0].search(text)
    if first is None or len(rule) == 1:
        return first is not None
    return rule[1].search(text, first.end()) is not None


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
    """Whether the message asks for assessed work or its answers (any language of the lexicon above; role
    play, "hypothetically" and "for a friend" framings change nothing, as the request itself is matched)."""
    text = " ".join(message.replace("’", "'").split())
    return _ANY_ASSESSED.search(text) is not None and any(_holds(rule, text) for rule in _INTEGRITY)


def normalize_question(message: str) -> str:
    return re.sub(r"[^\w\s]", "", " ".join(message.lower().split()))


_FOLLOW_UP = re.compile(
    r"^(?:and\s+|but\s+|so\s+|ok(?:ay)?[,.]?\s+|sorry[,.]?\s+|hmm+[,.]?\s+)*(?:"
    r"why(?:\s+(?:is|does|do|did|would|was|are)\s+(?:that|this|it|they)\b|\s+not\b|\W*$)|how\s+so\b|how\s+come\W*$|"
    r"what\s+do\s+you\s+mean\b|what\s+does\s+that\s+mean\b|really\W*$|"
    r"i\s+(?:still\s+)?(?:do\s*n[o']?t|can'?t|cannot)\s+(?:get|understand|follow|see)\b|"
    r"i'?m\s+(?:still\s+)?(?:confused|lost|not\s+sure)\b|still\s+(?:confused|lost|unclear)\b|"
    r"(?:can|could|would)\s+you\s+(?:please\s+)?(?:give|show|explain|elaborate|clarify|say|rephrase|simplify|"
    r"break)\b|(?:give|show)\s+me\s+(?:an?\s+)?(?:example|another)\b|(?:an?\s+)?example\b|"
    r"explain\s+(?:it\s+|that\s+|this\s+)?(?:again|more|differently|simpler|further)\b|"
    r"(?:tell\s+me\s+)?more(?:\s+(?:please|detail|details))?\W*$|go\s+on\b|elaborate\b|in\s+other\s+words\b|what\s+about\s+(?:it|that|this)\b)",
    re.IGNORECASE,
)


def is_follow_up(message: str) -> bool:
    """A turn about the previous answer ("why?", "I still don't get it", "can you give an example") rather
    than a new question: when it retrieves nothing of its own, the session's focus passages answer it."""
    text = " ".join(message.split())
    return len(text) <= 200 and bool(_FOLLOW_UP.match(text))
