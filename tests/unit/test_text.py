"""`aiteacher.text`: one tokenizer, stemmer and sentence splitter for PDF cleanup, chunking, search, the offline
provider and grading."""

from __future__ import annotations

from aiteacher.ingestion.chunking import chunk_pages
from aiteacher.ingestion.pdf import PageText, normalize_text
from aiteacher.llm.text import extract_key_terms
from aiteacher.text import context_text, ends_sentence, heading_at, split_sentences, stem, terms, tokens
from aiteacher.vectors import lexical


def test_schroedinger_stays_one_word_for_every_reader() -> None:
    text = "The Schrödinger equation describes how the quantum state of a physical system changes over time."
    assert "schrödinger" in tokens(text)
    assert stem("Schrödinger") in terms(text)
    assert stem("Schrödinger") in lexical.terms(text)  # the search index reads the same words
    assert "Schrödinger equation" in extract_key_terms(text)
    assert not any(term == "dinger" or term.startswith("dinger") for term in terms(text) + lexical.terms(text))
    # PDF cleanup mends a line-end hyphen inside an accented word with the same idea of a letter.
    assert normalize_text("Schrö-\ndinger equation, Schrödinger again") == "Schrödinger equation, Schrödinger again"


def test_snowball_stems_meet_across_word_forms() -> None:
    assert stem("neurons") == stem("neuron")
    assert stem("charged") == stem("charge") == stem("charging")
    assert stem("Schrödinger's") == stem("Schrödinger")
    assert terms("x-ray images") == [stem("x-ray"), "x", "ray", stem("images")]  # compounds whole and split
    assert lexical.terms("x-ray images") == ["x", "ray", stem("images")]  # the index splits them only


def test_sentences_end_where_a_reader_would_say() -> None:
    text = (
        "See Fig. 3 for the curve. Broca (e.g. Dr. Paul Broca) found it. H. M. had surgery. "
        "It ran at 3 p.m. and stopped."
    )
    assert split_sentences(text) == [
        "See Fig. 3 for the curve.",
        "Broca (e.g. Dr. Paul Broca) found it.",
        "H. M. had surgery.",
        "It ran at 3 p.m. and stopped.",
    ]
    assert ends_sentence("the curve.", " Broca") and not ends_sentence("See Fig.", " 3 for")


def test_chunk_boundaries_do_not_treat_an_abbreviation_as_a_sentence_end() -> None:
    """Chunking uses the same sentence rule: a chunk never ends after "Fig." when the real sentence end is near."""
    sentence = "Neurons fire when the membrane reaches threshold and the signal then travels down the axon. "
    cited = "As the curve in Fig. 3 of the handout shows, the response grows with the stimulus and then saturates. "
    text = sentence * 8 + cited + sentence * 4  # "Fig." is the last period before the 800-character limit
    chunks = chunk_pages([PageText(1, text)], target_chars=800, overlap_chars=100)
    assert chunks[0].text.endswith("down the axon.")
    assert not any(chunk.text.endswith("Fig.") for chunk in chunks)


def test_headings_and_context() -> None:
    lines = ["The chamber votes again.", "Strengths and Weaknesses of a Bicameral Legislature", "Bicameral systems..."]
    assert heading_at(lines, 1)
    assert not heading_at(["the pump moves", "Three Sodium Ions", "out of the cell"], 1)  # wrapped prose
    assert heading_at(["", "2.4 OPTIONS", "'-k' keeps files."], 1)  # numbered
    assert context_text("GNU bzip2 manual", "2.4 OPTIONS") == "GNU bzip2 manual: 2.4 OPTIONS"
    assert context_text("Legislatures", "") == "Legislatures"
    assert context_text("Intro", "intro") == "Intro"
