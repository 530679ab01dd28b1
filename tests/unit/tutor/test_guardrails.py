"""The academic-integrity guardrail on the labelled set in tests/fixtures/integrity_set.json (issue #8.10):
paraphrases, other languages, "hypothetically" and role play. The figures are in docs/tutor.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiteacher.tutor.guardrails import is_follow_up, is_integrity_violation

SET = json.loads((Path(__file__).parents[2] / "fixtures" / "integrity_set.json").read_text(encoding="utf-8"))


def rates(assessed: list[str], study: list[str]) -> tuple[float, float]:
    refused = sum(is_integrity_violation(text) for text in assessed) / len(assessed)
    false_refusals = sum(is_integrity_violation(text) for text in study) / len(study)
    return refused, false_refusals


def test_the_labelled_set_is_large_enough_and_disjoint() -> None:
    assert len(SET["assessed"]) >= 40 and len(SET["study"]) >= 40
    everything = SET["assessed"] + SET["study"] + SET["holdout_assessed"] + SET["holdout_study"]
    assert len(set(everything)) == len(everything)


def test_refuses_at_least_90_percent_of_assessed_work_with_at_most_5_percent_false_refusals() -> None:
    refused, false_refusals = rates(SET["assessed"], SET["study"])
    assert refused >= 0.9, f"refused {refused:.0%} of requests for assessed work"
    assert false_refusals <= 0.05, f"refused {false_refusals:.0%} of legitimate study questions"


def test_unseen_phrasings_stay_near_the_goal() -> None:
    """The hold-out set was written after the rules were frozen: a floor against regressions, not a target."""
    refused, false_refusals = rates(SET["holdout_assessed"], SET["holdout_study"])
    assert refused >= 0.85 and false_refusals <= 0.1, (refused, false_refusals)


def test_the_one_search_that_lets_most_messages_through_changes_no_verdict(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Most tutor messages name no assessed artefact: one search for one lets them through, where the eight
    rules took eight (75 against 13 µs a message). Every rule needs such a word, so no verdict may change."""
    import re

    from aiteacher.tutor import guardrails

    assert all(guardrails._ASSESSED in "".join(rule) for rule in guardrails._INTEGRITY_RULES)
    everything = SET["assessed"] + SET["study"] + SET["holdout_assessed"] + SET["holdout_study"]
    with_prefilter = [is_integrity_violation(text) for text in everything]
    searches = {"count": 0}
    original = guardrails._holds

    def counted(rule: tuple[re.Pattern[str], ...], text: str) -> bool:
        searches["count"] += 1
        return original(rule, text)

    monkeypatch.setattr(guardrails, "_holds", counted)
    assert not is_integrity_violation("What happens in open addressing when a bucket is taken?")
    assert searches["count"] == 0
    monkeypatch.setattr(guardrails, "_ANY_ASSESSED", re.compile(""))  # matches everything: the rules alone
    assert [is_integrity_violation(text) for text in everything] == with_prefilter


@pytest.mark.parametrize(
    "message",
    [
        "why?",
        "I still don't get it",
        "Can you give an example?",
        "how so",
        "explain it again please",
        "I'm still confused",
        "What do you mean?",
    ],
)
def test_follow_ups_are_recognised(message: str) -> None:
    assert is_follow_up(message)


@pytest.mark.parametrize(
    "message",
    [
        "What is the load factor of a hash table?",
        "Explain merge sort",
        "Why does linear probing cause clustering?",
        "More about rehashing",
        "why? " + "hash tables " * 40,
    ],
)
def test_new_questions_are_not_follow_ups(message: str) -> None:
    assert not is_follow_up(message)
