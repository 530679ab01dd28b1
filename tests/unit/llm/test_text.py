"""`aiteacher.llm.text` reads words of any script: accented Latin, Greek and Cyrillic stay whole."""

from __future__ import annotations

from aiteacher.llm.text import extract_key_terms, near_duplicate
from aiteacher.text import split_sentences, terms, tokens


def test_key_terms_keep_accented_letters() -> None:
    text = "The Schrödinger equation describes how the quantum state of a physical system changes over time."
    key_terms = extract_key_terms(text)
    assert "Schrödinger equation" in key_terms
    assert not any(term.startswith("dinger") for term in key_terms)


def test_tokens_of_greek_and_cyrillic_words_stay_whole() -> None:
    assert tokens("Η εξίσωση Σρέντινγκερ") == ["η", "εξίσωση", "σρέντινγκερ"]
    assert tokens("Уравнение Шрёдингера — основа квантовой механики") == [
        "уравнение",
        "шрёдингера",
        "основа",
        "квантовой",
        "механики",
    ]
    assert "μιτοχόνδριο" in terms("Το μιτοχόνδριο παράγει ενέργεια.")


def test_key_terms_of_a_cyrillic_text_are_whole_words() -> None:
    text = "Уравнение Шрёдингера описывает волновую функцию. Волновая функция задаёт состояние системы."
    key_terms = extract_key_terms(text)
    assert key_terms
    words = {word.lower() for term in key_terms for word in term.split()}
    assert "шрёдингера" in words
    assert words <= set(tokens(text))  # every word of a term is a whole word of the text


def test_sentences_split_before_an_accented_capital() -> None:
    text = "The first law holds here. Érdős proved the second one. Это третье предложение. Ещё одно."
    assert split_sentences(text) == [
        "The first law holds here.",
        "Érdős proved the second one.",
        "Это третье предложение.",
        "Ещё одно.",
    ]


def test_sentences_do_not_split_before_a_lower_case_word() -> None:
    assert split_sentences("It ran at 3 p.m. and stopped. Then ёлка fell.") == [
        "It ran at 3 p.m. and stopped.",
        "Then ёлка fell.",
    ]


def test_a_lone_non_ascii_sentence_is_kept() -> None:
    assert split_sentences("Ψ") == ["Ψ"]


def test_near_duplicate_compares_accented_words() -> None:
    assert near_duplicate("Qu'est-ce que l'équation de Schrödinger ?", "Qu'est-ce que l'équation de Schrödinger?")
    assert not near_duplicate("Die Schrödinger-Gleichung", "Die Dirac-Gleichung")
