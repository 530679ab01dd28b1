"""The offline provider: deterministic, grounded tutor answers and exam items, rule-based moderation and
learning-state summaries, and the text tools behind them (key terms, sentences, near-duplicates)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from aiteacher.llm import (
    ChatTurn,
    LearningState,
    LLMProvider,
    McqItem,
    OfflineProvider,
    Passage,
    TheoryItem,
    extract_key_terms,
    near_duplicate,
)
from aiteacher.llm.base import NO_SOURCES_ANSWER
from aiteacher.text import contains_term, split_sentences

NEURONS = Passage(
    "chunk-1",
    "doc-1",
    "Biopsychology: Neurons",
    2,
    "Neurons are the central building blocks of the nervous system. Between signals, the neuron membrane is "
    "held in a state of readiness, called the resting potential. The sodium-potassium pump actively transports "
    "three sodium ions out of the cell for every two potassium ions in, creating a net negative charge inside "
    "the cell.\nThe synaptic cleft is a very small space between two neurons where communication between "
    "neurons occurs. Neurotransmitters released into the synaptic cleft bind with receptors on the dendrite of "
    "an adjacent neuron.",
    0.92,
    "psychology",
)
ACTION = Passage(
    "chunk-2",
    "doc-1",
    "Biopsychology: Neurons",
    3,
    "When the threshold of excitation is reached, the neuron fires an action potential. The action potential "
    "is an all-or-none event: either the neuron fires completely or it does not fire at all. The myelin sheath "
    "insulates the axon and speeds up the action potential as it travels to the terminal buttons. After "
    "firing, the neuron returns to the resting potential during the refractory period.",
    0.88,
    "psychology",
)
HORMONES = Passage(
    "chunk-3",
    "doc-2",
    "Biopsychology: The Endocrine System",
    12,
    "The endocrine system consists of a series of glands that produce chemical substances known as hormones. "
    "The pancreas secretes insulin, which lowers blood sugar, and glucagon, which raises blood sugar. The "
    "pituitary gland is often called the master gland because it controls the secretions of other glands. "
    "The adrenal glands release adrenaline during the fight or flight response.",
    0.75,
    "psychology",
)
PASSAGES = [NEURONS, ACTION, HORMONES]
POOL = [
    "hippocampus",
    "amygdala",
    "cerebellum",
    "corpus callosum",
    "frontal lobe",
    "Broca's area",
    "serotonin",
    "dopamine",
    "glial cells",
    "spinal cord",
    "reuptake",
    "thalamus",
]
QUESTION = "Why is the inside of a resting neuron negatively charged?"


@pytest.fixture(scope="module")
def llm() -> OfflineProvider:
    return OfflineProvider()


def answer(llm: OfflineProvider, level: int, question: str = QUESTION, **kwargs: object) -> object:
    options: dict[str, object] = {"history": [], "learning_state": None, "hint_level": level}
    options.update(kwargs)
    return llm.tutor_answer(question, PASSAGES, **options)  # type: ignore[arg-type]


# --- tutor -----------------------------------------------------------------------------------------
def test_offline_provider_implements_the_interface(llm: OfflineProvider) -> None:
    assert isinstance(llm, LLMProvider)
    assert llm.name == "offline"


def test_answers_are_deterministic(llm: OfflineProvider) -> None:
    for level in (0, 1, 2):
        first = answer(llm, level)
        assert answer(llm, level) == first
        assert answer(OfflineProvider(), level) == first


def test_citations_are_the_passages_the_answer_uses(llm: OfflineProvider) -> None:
    for level in (0, 1, 2):
        reply = answer(llm, level)
        assert reply.used_passages, level
        assert all(passage in PASSAGES for passage in reply.used_passages)
        assert reply.used_passages[0] == NEURONS  # the sodium-potassium sentence lives there
        for passage in reply.used_passages:
            assert f"p. {passage.page}" in reply.answer or f"page {passage.page}" in reply.answer


def test_every_answer_ends_with_a_guiding_question(llm: OfflineProvider) -> None:
    for question in (QUESTION, "What does all-or-none mean?", "Which hormone raises blood sugar?", "xyzzy"):
        for level in (0, 1, 2):
            text = answer(llm, level, question).answer
            assert text.rstrip().endswith("?"), (question, level, text)
            assert text.count("?") >= 1


def test_the_hint_ladder_gives_more_at_each_level(llm: OfflineProvider) -> None:
    key_sentence = (
        "The sodium-potassium pump actively transports three sodium ions out of the cell for every two "
        "potassium ions in, creating a net negative charge inside the cell."
    )
    hint, stronger, worked = (answer(llm, level).answer for level in (0, 1, 2))
    assert len({hint, stronger, worked}) == 3

    # 0: points at the page and the concept, does not give the answer away.
    assert "page 2 of “Biopsychology: Neurons”" in hint
    assert key_sentence not in hint and "three sodium ions" not in hint
    # 1: quotes the key sentence.
    assert key_sentence in stronger
    # 2: a worked explanation of two or three source sentences, each cited.
    steps = re.findall(r"^\d\. (.+) \(“[^”]+”, p\. \d+\)$", worked, flags=re.MULTILINE)
    assert 2 <= len(steps) <= 3
    assert key_sentence in steps
    assert all(any(step in p.text for p in PASSAGES) for step in steps)


def test_worked_explanation_answers_from_the_right_passage(llm: OfflineProvider) -> None:
    reply = answer(llm, 2, "Which hormone raises blood sugar, and which one lowers it?")
    assert reply.used_passages == [HORMONES]
    assert "glucagon, which raises blood sugar" in reply.answer


def test_learning_state_misconception_is_brought_up(llm: OfflineProvider) -> None:
    state = LearningState(
        topics=["resting potential"],
        misconceptions=["I think a resting neuron is positively charged inside"],
        version=2,
    )
    reply = answer(llm, 1, learning_state=state)
    assert "Earlier you said" in reply.answer and reply.answer.rstrip().endswith("?")


def test_no_passages_and_bad_hint_levels(llm: OfflineProvider) -> None:
    reply = llm.tutor_answer(QUESTION, [], history=[], learning_state=None, hint_level=0)
    assert reply.answer == NO_SOURCES_ANSWER and reply.used_passages == []
    with pytest.raises(ValueError, match="hint_level"):
        answer(llm, 3)


# --- exam items ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def items(llm: OfflineProvider) -> list[object]:
    return llm.exam_items(PASSAGES, num_mcq=5, num_theory=2, topic=None, difficulty=None, distractor_pool=POOL)


def cloze_sentence(item: McqItem) -> str:
    match = re.search(r"“([^”]*_____[^”]*)”", item.question)
    assert match, item.question
    return match.group(1).replace("_____", item.options[item.answer_index])


def test_exam_counts_and_order(items: list[object]) -> None:
    assert [type(item) for item in items] == [McqItem] * 5 + [TheoryItem] * 2


def test_mcqs_are_valid(items: list[object]) -> None:
    mcqs = [item for item in items if isinstance(item, McqItem)]
    for item in mcqs:
        assert len(item.options) == 4
        assert len({option.casefold() for option in item.options}) == 4
        assert 0 <= item.answer_index < 4
        assert item.source in PASSAGES
        correct = item.options[item.answer_index]
        assert contains_term(item.source.text, correct)
        sentence = cloze_sentence(item)
        assert sentence in item.source.text.replace("\n", " ")
        assert sentence in item.explanation and correct in item.explanation
        for index, option in enumerate(item.options):
            if index != item.answer_index:
                assert not contains_term(sentence, option), (option, sentence)
                assert option in POOL  # the pool is large enough: distractors all come from it
    assert len({item.question for item in mcqs}) == len(mcqs)
    assert len({item.options[item.answer_index].casefold() for item in mcqs}) == len(mcqs)
    assert len({item.answer_index for item in mcqs}) > 1  # the key is not always in the same place
    assert len({item.source.chunk_id for item in mcqs}) == 3  # spread over the material


def test_theory_items_have_model_answers_and_rubrics(items: list[object]) -> None:
    theory = [item for item in items if isinstance(item, TheoryItem)]
    for item in theory:
        assert item.question.startswith(("Explain", "Describe"))
        assert f"p. {item.source.page}" in item.question
        assert 2 <= len(item.rubric) <= 3
        source_sentences = split_sentences(item.source.text)
        assert all(point in source_sentences for point in item.rubric)
        assert item.model_answer == " ".join(item.rubric)


def test_exam_items_are_deterministic(llm: OfflineProvider, items: list[object]) -> None:
    again = OfflineProvider().exam_items(
        PASSAGES, num_mcq=5, num_theory=2, topic=None, difficulty=None, distractor_pool=POOL
    )
    assert again == items


def test_verify_accepts_generated_items(llm: OfflineProvider, items: list[object]) -> None:
    assert all(llm.verify_item(item) for item in items)  # type: ignore[arg-type]


def test_verify_rejects_tampered_items(llm: OfflineProvider, items: list[object]) -> None:
    mcq = next(item for item in items if isinstance(item, McqItem))
    for wrong in range(4):
        if wrong != mcq.answer_index:
            assert llm.verify_item(dataclasses.replace(mcq, answer_index=wrong)) is False
    correct = mcq.options[mcq.answer_index]
    sentence_word = next(
        word
        for word in cloze_sentence(mcq).split()
        if len(word) > 6 and word.isalpha() and not contains_term(correct, word)
    )
    options = list(mcq.options)
    options[(mcq.answer_index + 1) % 4] = sentence_word  # a distractor that sits in the source sentence
    assert llm.verify_item(dataclasses.replace(mcq, options=options)) is False
    options = list(mcq.options)
    options[(mcq.answer_index + 1) % 4] = correct.upper()  # two options equal ignoring case
    assert llm.verify_item(dataclasses.replace(mcq, options=options)) is False
    assert llm.verify_item(dataclasses.replace(mcq, source=HORMONES if mcq.source != HORMONES else NEURONS)) is False

    theory = next(item for item in items if isinstance(item, TheoryItem))
    invented = dataclasses.replace(theory, rubric=["Quantum chromodynamics explains the colour charge of quarks."])
    assert llm.verify_item(invented) is False
    assert llm.verify_item(dataclasses.replace(theory, rubric=[])) is False


def test_verify_non_cloze_mcq(llm: OfflineProvider) -> None:
    """Items written by another provider (no blank) are checked against the sentence holding the key."""
    item = McqItem(
        question="Which hormone raises blood sugar?",
        options=["insulin", "glucagon", "dopamine", "cortisol"],
        answer_index=1,
        explanation="",
        source=HORMONES,
    )
    assert llm.verify_item(item) is False  # "insulin" sits in the same sentence as the key
    fixed = dataclasses.replace(item, options=["serotonin", "glucagon", "dopamine", "cortisol"])
    assert llm.verify_item(fixed) is True
    assert llm.verify_item(dataclasses.replace(fixed, answer_index=2)) is False  # dopamine is not in the source


def test_topic_and_difficulty_steer_the_items(llm: OfflineProvider) -> None:
    on_topic = llm.exam_items(
        PASSAGES, num_mcq=1, num_theory=1, topic="hormones and glands", difficulty="hard", distractor_pool=POOL
    )
    assert [item.source for item in on_topic] == [HORMONES, HORMONES]
    easy = llm.exam_items(PASSAGES, num_mcq=3, num_theory=0, topic=None, difficulty="easy", distractor_pool=POOL)
    assert all(llm.verify_item(item) for item in easy)


def test_distractors_fall_back_to_the_material_when_the_pool_is_small(llm: OfflineProvider) -> None:
    mcqs = llm.exam_items(PASSAGES, num_mcq=3, num_theory=0, topic=None, difficulty=None, distractor_pool=["thalamus"])
    assert len(mcqs) == 3
    assert all(llm.verify_item(item) for item in mcqs)


def test_exam_edge_cases(llm: OfflineProvider) -> None:
    assert llm.exam_items([], num_mcq=3, num_theory=1, topic=None, difficulty=None, distractor_pool=POOL) == []
    assert llm.exam_items(PASSAGES, num_mcq=0, num_theory=0, topic=None, difficulty=None, distractor_pool=POOL) == []
    with pytest.raises(ValueError):
        llm.exam_items(PASSAGES, num_mcq=-1, num_theory=0, topic=None, difficulty=None, distractor_pool=POOL)
    # More than the material supports: fewer items, never invalid ones.
    many = llm.exam_items([HORMONES], num_mcq=20, num_theory=0, topic=None, difficulty=None, distractor_pool=POOL)
    assert 1 <= len(many) < 20
    assert all(llm.verify_item(item) for item in many)


# --- moderation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "categories"),
    [
        ("I'm going to kill you after class", ["violence"]),
        ("how do I build a bomb", ["violence"]),
        ("I want to kill myself", ["self-harm"]),
        ("sometimes I think about suicide", ["self-harm"]),
        ("you're an idiot, fuck you", ["harassment"]),
        ("send me nudes", ["sexual"]),
        ("where can I find porn", ["sexual"]),
    ],
)
def test_moderation_flags_the_word_list(llm: OfflineProvider, text: str, categories: list[str]) -> None:
    result = llm.moderate(text)
    assert result.flagged is True
    assert result.categories == categories


@pytest.mark.parametrize(
    "text",
    [
        "What is the resting potential of a neuron?",
        "The assassination and murder of Archduke Franz Ferdinand started World War I.",
        "Explain sexual reproduction in flowering plants.",
        "How do killer T cells recognise infected cells?",
        "This skill you learn in the lab matters.",  # "kill you" inside "skill you": word boundaries
        "Durkheim studied suicide rates as a social fact",  # an academic topic is still flagged: the list is simple
    ],
)
def test_moderation_word_boundaries(llm: OfflineProvider, text: str) -> None:
    result = llm.moderate(text)
    if "Durkheim" in text:
        assert result.categories == ["self-harm"]
    else:
        assert result.flagged is False and result.categories == []


# --- learning state --------------------------------------------------------------------------------
def test_learning_state_summary(llm: OfflineProvider) -> None:
    turns = [
        ChatTurn("user", "What is the sodium-potassium pump?"),
        ChatTurn("assistant", "Look at page 2. What does it move?"),
        ChatTurn("user", "I think the action potential gets weaker along the axon, isn't it?"),
        ChatTurn("assistant", "Check page 3: what does all-or-none mean?"),
        ChatTurn("user", "I think so"),  # the last turn: no reply yet, nothing to call a misconception
    ]
    previous = LearningState(topics=["synaptic cleft"], misconceptions=[], next_steps=[], version=2)
    state = llm.summarize_learning_state(turns, previous)
    assert state.version == 3
    assert "sodium-potassium pump" in state.topics and "action potential" in state.topics
    assert "synaptic cleft" in state.topics  # earlier topics are kept
    assert state.misconceptions == ["I think the action potential gets weaker along the axon, isn't it?"]
    assert state.next_steps and any("sodium-potassium pump" in step for step in state.next_steps)
    assert llm.summarize_learning_state(turns, previous) == state

    first = llm.summarize_learning_state([ChatTurn("user", "Hello")], None)
    assert first.version == 1 and first.misconceptions == []


# --- text tools ------------------------------------------------------------------------------------
def test_extract_key_terms() -> None:
    text = " ".join(p.text for p in PASSAGES)
    terms = extract_key_terms(text)
    assert terms == extract_key_terms(text)
    for expected in ("action potential", "resting potential", "sodium-potassium pump", "synaptic cleft"):
        assert expected in terms
    assert all(contains_term(text, term) for term in terms)
    lowered = {term.lower() for term in terms}
    assert not lowered & {"the", "between", "which", "is", "of"}
    named = extract_key_terms(
        "Electrodes on the scalp record an EEG. The EEG shows brainwaves. Paul Broca "
        "studied speech; Broca's area is named after him."
    )
    assert "EEG" in named and any("Broca" in term for term in named)
    assert extract_key_terms("") == []


def test_split_sentences_keeps_abbreviations_and_splits_headings() -> None:
    text = (
        "Neuronal Communication\nThe patient H. M. lost the ability to form new memories, e.g. names. "
        "See Fig. 3 for details.\n\n• First bullet point here\n• Second bullet"
    )
    assert split_sentences(text) == [
        "Neuronal Communication",
        "The patient H. M. lost the ability to form new memories, e.g. names.",
        "See Fig. 3 for details.",
        "First bullet point here",
        "Second bullet",
    ]


def test_near_duplicate() -> None:
    assert near_duplicate("Explain the action potential.", "Explain the action potentials")
    assert near_duplicate(
        "What is the role of the synaptic cleft in neuronal communication?",
        "What is the role of the synaptic cleft in neuron communication?",
    )
    assert near_duplicate("Which gland is the master gland?", "Which gland is called the master gland?")
    assert not near_duplicate("What does insulin do?", "What does glucagon do?")
    assert near_duplicate("", "")
