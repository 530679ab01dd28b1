"""The offline provider: deterministic, grounded, no network and no model.

- Tutor answers are extractive: the sentences of the retrieved passages are ranked by BM25 against the
  question and the hint level decides how much of them the student sees (a pointer to the page, the key
  sentence, or a 2-3 sentence worked explanation), always ending with a guiding question.
- Exam items are built from the material: cloze MCQs that blank a key term of a source sentence, with
  distractors from the course's key terms; theory questions whose model answer and rubric are the
  passage's most relevant sentences. Verification re-checks that construction against the source.
- Learning-state summaries and moderation are rule based (`aiteacher.llm.moderation`).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from aiteacher.llm.base import (
    HINT_SOCRATIC,
    HINT_STRONG,
    MCQ_OPTIONS,
    NO_SOURCES_ANSWER,
    ChatTurn,
    ExamItem,
    LearningState,
    McqItem,
    ModerationResult,
    Passage,
    TheoryItem,
    TutorReply,
    check_counts,
    check_hint_level,
)
from aiteacher.llm.moderation import moderate_offline
from aiteacher.llm.text import QUESTION_WORDS, RankedSentence, bm25_rank, extract_key_terms, near_duplicate
from aiteacher.text import (
    STOPWORDS,
    contains_term,
    normalize_space,
    split_sentences,
    stable_hash,
    stem,
    terms,
    tokens,
)

BLANK = "_____"
#: A sentence shorter than this is a heading or a fragment, not something to quote or examine.
MIN_SENTENCE_WORDS = 5
MAX_CLOZE_WORDS = 60
MAX_LIST_ITEMS = 10
_DEFINITION_CUES = re.compile(
    r"\b(?:is|are|was|were) (?:a|an|the|called|known as|defined as)\b|\b(?:refers? to|is called|are called|"
    r"known as|defined as|consists? of|means)\b",
    re.IGNORECASE,
)
_TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")
_PRONOUN_START = re.compile(r"^(?:it|this|that|these|those|they|he|she|such|its|their)\b", re.IGNORECASE)
_CLOZE_IN_QUESTION = re.compile(r"“([^”]*_{3,}[^”]*)”")
_BELIEF_CUES = re.compile(
    r"\b(?:i think|i thought|i believe|i assumed|i guess|isn'?t it|is it not|doesn'?t it|aren'?t they|"
    r"wasn'?t it|so it'?s|right\?)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Sentence:
    passage_index: int
    index: int
    text: str


class OfflineProvider:
    """Grounded, deterministic answers and exam items built from the passages alone."""

    name = "offline"

    # --- tutor -------------------------------------------------------------------------------------
    def tutor_answer(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn] | None = None,
        learning_state: LearningState | None = None,
        hint_level: int = HINT_SOCRATIC,
    ) -> TutorReply:
        """An extractive answer: 0 points at the page and concept, 1 quotes the key sentence, 2 walks
        through 2-3 cited sentences; then a guiding question. A follow-up with no topic words of its own
        ("why?", "I still don't get it") is about the student's previous question in `history`; a
        misconception in `learning_state` that the question touches is brought up."""
        check_hint_level(hint_level)
        if not passages:
            return TutorReply(answer=NO_SOURCES_ANSWER, used_passages=[])
        topic = _topic_question(question, history or [])
        chosen = _answer_sentences(topic, passages, hint_level)
        lead = chosen[0]
        passage = passages[lead.passage_index]
        concept = _concept(topic, lead.text)
        focus = _focus(topic, lead.text, concept)
        variant = stable_hash(question, str(hint_level))

        named = f"“{concept}”" if concept else ""
        if hint_level == HINT_SOCRATIC:
            about = f"The part that mentions {named}" if named else "The passage there"
            extra = f", especially what it says about “{focus}”" if focus else ""
            body = (
                f"Here is a hint rather than the answer: look at page {passage.page} of “{passage.title}”. "
                f"{about} holds the key{extra}. Re-read it and try to put the idea into your own words."
            )
            guiding = _pick(
                variant,
                [
                    f"How do you think “{focus}” connects to your question?"
                    if focus
                    else "What does that page suggest about your question?",
                    f"Based on that page, how would you explain {named or 'the idea'} in one sentence?",
                    f"What role do you think {f'“{focus}”' if focus else named or 'this idea'} plays here?",
                ],
            )
        elif hint_level == HINT_STRONG:
            body = f"A stronger hint: the key sentence is on page {passage.page} of “{passage.title}”:\n\n> {lead.text}"
            guiding = _pick(
                variant,
                [
                    f"How does this sentence answer your question{f' about {named}' if named else ''}?",
                    "Which words in that sentence carry the answer, and why?",
                    f"Can you now explain {named or 'the idea'} in your own words?",
                ],
            )
        else:
            steps = []
            for number, sentence in enumerate(chosen, start=1):
                source = passages[sentence.passage_index]
                steps.append(f"{number}. {sentence.text} (“{source.title}”, p. {source.page})")
            body = "Here is a worked explanation from your course material:\n\n" + "\n".join(steps)
            guiding = _pick(
                variant,
                [
                    f"To check your understanding: how would you explain {named or 'this'} to a classmate?",
                    "Can you think of an example, not in the notes, where this applies?",
                    "Which step of this explanation would you find hardest to explain without the notes, and why?",
                ],
            )

        reminder = _misconception_reminder(question, learning_state)
        parts = [body] + ([reminder] if reminder else []) + [guiding]
        used: list[Passage] = []
        for sentence in chosen if hint_level > HINT_SOCRATIC else chosen[:1]:
            source = passages[sentence.passage_index]
            if source not in used:
                used.append(source)
        return TutorReply(answer="\n\n".join(parts), used_passages=used)

    async def tutor_answer_async(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn] | None = None,
        learning_state: LearningState | None = None,
        hint_level: int = HINT_SOCRATIC,
    ) -> TutorReply:
        return self.tutor_answer(
            question, passages, history=history, learning_state=learning_state, hint_level=hint_level
        )

    async def stream_tutor_answer(
        self,
        question: str,
        passages: list[Passage],
        *,
        history: list[ChatTurn] | None = None,
        learning_state: LearningState | None = None,
        hint_level: int = HINT_SOCRATIC,
    ) -> AsyncIterator[str | TutorReply]:
        """The extractive answer, one sentence (or list line) per delta, yielding to the loop in between."""
        reply = self.tutor_answer(
            question, passages, history=history, learning_state=learning_state, hint_level=hint_level
        )
        for piece in stream_pieces(reply.answer):
            yield piece
            await asyncio.sleep(0)
        yield reply

    async def moderate_async(self, text: str) -> ModerationResult:
        return moderate_offline(text)

    # --- exams -------------------------------------------------------------------------------------
    def exam_items(
        self,
        passages: list[Passage],
        *,
        num_mcq: int,
        num_theory: int,
        topic: str | None = None,
        difficulty: str | None = None,
        distractor_pool: list[str] | None = None,
    ) -> list[ExamItem]:
        """Up to `num_mcq` cloze MCQs and `num_theory` theory items (fewer when the material runs out).

        Distractors come from `distractor_pool` first, then from the key terms of the other passages.
        `difficulty="hard"` picks distractors that look most like the answer; "easy" spreads them.
        """
        check_counts(num_mcq, num_theory)
        if not passages or num_mcq + num_theory == 0:
            return []
        ordered = _by_topic(passages, topic)
        passage_terms = {id(p): extract_key_terms(p.text, limit=60) for p in passages}
        corpus_terms = extract_key_terms("\n\n".join(p.text for p in passages), limit=200)
        pool = _dedupe(distractor_pool or [])
        fallback = _dedupe([*corpus_terms, *(t for p in passages for t in passage_terms[id(p)])])

        items: list[ExamItem] = []
        items.extend(self._mcqs(ordered, num_mcq, topic, difficulty, (pool, fallback), passage_terms))
        items.extend(self._theory(ordered, num_theory, topic, passage_terms))
        return items

    def _mcqs(
        self,
        passages: list[Passage],
        count: int,
        topic: str | None,
        difficulty: str | None,
        pools: tuple[list[str], list[str]],
        passage_terms: dict[int, list[str]],
    ) -> list[McqItem]:
        if count == 0:
            return []
        queues = [_cloze_candidates(p, passage_terms[id(p)], topic) for p in passages]
        items: list[McqItem] = []
        used_answers: set[tuple[str, ...]] = set()
        used_sentences: set[str] = set()
        while len(items) < count and any(queues):
            for passage, queue in zip(passages, queues, strict=True):
                while queue and len(items) < count:
                    sentence, answer = queue.pop(0)
                    key = _term_key(answer)
                    if key in used_answers or sentence in used_sentences:
                        continue
                    item = _build_mcq(passage, sentence, answer, pools, difficulty)
                    if item is None or any(near_duplicate(item.question, other.question) for other in items):
                        continue
                    items.append(item)
                    used_answers.add(key)
                    used_sentences.add(sentence)
                    break  # one item per passage per round: spread questions over the material
        return items

    def _theory(
        self, passages: list[Passage], count: int, topic: str | None, passage_terms: dict[int, list[str]]
    ) -> list[TheoryItem]:
        items: list[TheoryItem] = []
        used_terms: set[tuple[str, ...]] = set()
        rounds = 0
        while len(items) < count and rounds < 3:
            rounds += 1
            added = False
            for passage in passages:
                if len(items) >= count:
                    break
                item = _build_theory(passage, passage_terms[id(passage)], topic, used_terms)
                if item is None or any(near_duplicate(item.question, other.question) for other in items):
                    continue
                items.append(item)
                added = True
            if not added:
                break
        return items

    def verify_item(self, item: ExamItem) -> bool:
        """Re-check an item against its source: for an MCQ the key must occur in the source, a cloze filled
        with the key must reproduce a source sentence and no distractor may occur in that sentence; a
        theory item's model answer and rubric must be drawn from the source's words."""
        if isinstance(item, McqItem):
            return _verify_mcq(item)
        return _verify_theory(item)

    # --- learning state ----------------------------------------------------------------------------
    def summarize_learning_state(self, turns: list[ChatTurn], previous: LearningState | None) -> LearningState:
        """Topics: key terms of the student's turns. Misconceptions: student statements of belief ("I
        think...", "...isn't it?") that the tutor answered. Next steps: review the newest topics."""
        user_text = "\n".join(_as_sentence(turn.content) for turn in turns if turn.role == "user")
        tutor_text = " ".join(turn.content for turn in turns if turn.role == "assistant")
        new_topics = [
            term
            for term in extract_key_terms(user_text, limit=MAX_LIST_ITEMS, min_count=1)
            if _term_key(term) and not set(_term_key(term)) <= _QUESTION_STEMS
        ]
        # Terms the tutor's replies (drawn from the material) also use first: they are course topics.
        new_topics.sort(key=lambda term: not contains_term(tutor_text, term))
        topics = _dedupe([*new_topics, *(previous.topics if previous else [])])[:MAX_LIST_ITEMS]

        new_misconceptions = []
        for turn, reply in itertools.pairwise(turns):
            if turn.role == "user" and reply.role == "assistant" and _BELIEF_CUES.search(turn.content):
                new_misconceptions.append(_shorten(normalize_space(turn.content), 200))
        misconceptions = _dedupe([*(previous.misconceptions if previous else []), *new_misconceptions])
        misconceptions = misconceptions[-MAX_LIST_ITEMS:]

        next_steps = [f"Revisit your earlier idea: “{_shorten(text, 80)}”" for text in new_misconceptions[:2]]
        next_steps += [f"Review {topic} and explain it in your own words" for topic in topics[:3]]
        if topics:
            next_steps.append(f"Try practice questions on {', '.join(topics[:3])}")
        return LearningState(
            topics=topics,
            misconceptions=misconceptions,
            next_steps=next_steps[:MAX_LIST_ITEMS] or (previous.next_steps if previous else []),
            version=(previous.version if previous else 0) + 1,
        )

    def moderate(self, text: str) -> ModerationResult:
        return moderate_offline(text)

    def close(self) -> None:
        """Nothing to release (present so every provider can be closed alike)."""


# --- tutor helpers ---------------------------------------------------------------------------------
_QUESTION_STEMS = frozenset(stem(word) for word in QUESTION_WORDS)
_FOLLOW_UP_STEMS = frozenset(
    stem(word)
    for word in (
        "still",
        "get",
        "understand",
        "example",
        "give",
        "explain",
        "again",
        "more",
        "mean",
        "detail",
        "elaborate",
        "confused",
        "lost",
        "sure",
        "please",
        "another",
        "simpler",
        "simple",
        "way",
        "differently",
        "ok",
        "okay",
        "thanks",
        "yes",
        "no",
        "really",
        "so",
        "then",
    )
)


_PIECE_END = re.compile(r"(?<=[.!?:”\"])\s+|\n+")


def stream_pieces(answer: str) -> list[str]:
    """`answer` cut after each sentence or line; the pieces, concatenated, are `answer` exactly."""
    pieces, start = [], 0
    for match in _PIECE_END.finditer(answer):
        pieces.append(answer[start : match.end()])
        start = match.end()
    if start < len(answer):
        pieces.append(answer[start:])
    return [piece for piece in pieces if piece]


def _is_prose(sentence: str) -> bool:
    """A real sentence (not a heading, a caption fragment or a running header)."""
    words = tokens(sentence)
    return (
        len(words) >= MIN_SENTENCE_WORDS
        and _TERMINAL.search(sentence) is not None
        and sum(word.islower() for word in words) >= 3
    )


def _sentences(passages: Sequence[Passage]) -> list[_Sentence]:
    out: list[_Sentence] = []
    for passage_index, passage in enumerate(passages):
        sentences = split_sentences(passage.text)
        substantive = [s for s in sentences if _is_prose(s)] or sentences
        out.extend(_Sentence(passage_index, index, text) for index, text in enumerate(substantive))
    return out


def _answer_sentences(question: str, passages: Sequence[Passage], hint_level: int) -> list[_Sentence]:
    """The sentences the answer uses, in reading order: 1 for a hint, 2-3 for a worked explanation."""
    sentences = _sentences(passages)
    if not sentences:
        passage = passages[0]
        return [_Sentence(0, 0, _shorten(normalize_space(passage.text), 400) or passage.title)]
    ranked = bm25_rank(question, [(s.passage_index, s.index, s.text) for s in sentences])
    by_position = {(s.passage_index, s.index): s for s in sentences}
    top = ranked[0]
    # Nothing in common with the question's words (a paraphrase): the best-ranked passage's opening.
    lead = sentences[0] if top.score <= 0 else by_position[(top.passage_index, top.sentence_index)]
    if hint_level < 2:
        return [lead]

    chosen = [lead]
    for candidate in ranked[1:]:
        if len(chosen) == 3 or candidate.score < 0.35 * top.score or candidate.score <= 0:
            break
        sentence = by_position[(candidate.passage_index, candidate.sentence_index)]
        if not any(near_duplicate(sentence.text, other.text, 0.6) for other in chosen):
            chosen.append(sentence)
    if len(chosen) < 2:
        # One strong sentence: the next one usually continues the explanation.
        following = by_position.get((lead.passage_index, lead.index + 1))
        if following is not None:
            chosen.append(following)
    return sorted(chosen, key=lambda s: (s.passage_index, s.index))


def _concept(question: str, sentence: str) -> str:
    """The question's own key term that the sentence talks about (what the student asked about)."""
    for term in extract_key_terms(question, limit=8, min_count=1):
        key = _term_key(term)
        if key and not set(key) <= _QUESTION_STEMS and set(key) <= set(terms(sentence)):
            return term
    sentence_terms = extract_key_terms(sentence, limit=8, min_count=1)
    question_stems = set(terms(question))
    for term in sentence_terms:
        if set(_term_key(term)) & question_stems:
            return term
    return sentence_terms[0] if sentence_terms else ""


def _focus(question: str, sentence: str, concept: str) -> str:
    """A key term of the sentence the question does not mention: where the answer lies."""
    question_stems = set(terms(question)) | set(_term_key(concept))
    for term in extract_key_terms(sentence, limit=8, min_count=1):
        if not set(_term_key(term)) & question_stems:
            return term
    return ""


def _topic_question(question: str, history: Sequence[ChatTurn]) -> str:
    """The question, or for a follow-up with fewer than two topic words, the previous question with it."""
    if len(set(terms(question)) - _QUESTION_STEMS - _FOLLOW_UP_STEMS) >= 2:
        return question
    previous = next((turn.content for turn in reversed(history) if turn.role == "user"), "")
    return f"{previous} {question}".strip()


def _misconception_reminder(question: str, state: LearningState | None) -> str:
    if state is None:
        return ""
    question_stems = set(terms(question)) - _QUESTION_STEMS
    for misconception in reversed(state.misconceptions):
        if len(question_stems & set(terms(misconception))) >= 2:
            return f"Earlier you said: “{_shorten(misconception, 120)}”. Check whether this passage supports that idea."
    return ""


def _pick(variant: int, options: list[str]) -> str:
    return options[variant % len(options)]


# --- exam helpers ----------------------------------------------------------------------------------
def _term_key(term: str) -> tuple[str, ...]:
    return tuple(stem(word) for word in tokens(term))


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: set[tuple[str, ...]] = set()
    out: list[str] = []
    for value in values:
        value = normalize_space(value)
        key = _term_key(value)
        if value and key and key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _by_topic(passages: list[Passage], topic: str | None) -> list[Passage]:
    """Passages about the topic first (BM25 of the topic over whole passages), then the rest in order."""
    if not topic or not topic.strip():
        return list(passages)
    ranked = bm25_rank(topic, [(index, 0, p.text) for index, p in enumerate(passages)], drop=STOPWORDS)
    on_topic = [passages[r.passage_index] for r in ranked if r.score > 0]
    return on_topic + [p for p in passages if p not in on_topic]


def _cloze_candidates(passage: Passage, key_terms: list[str], topic: str | None) -> list[tuple[str, str]]:
    """(sentence, term to blank) pairs of a passage, best first: definitions, on-topic, rich in key terms."""
    rank = {_term_key(term): position for position, term in enumerate(key_terms)}
    topic_stems = set(terms(topic or "")) - _QUESTION_STEMS
    scored: list[tuple[float, int, str, str]] = []
    for index, sentence in enumerate(split_sentences(passage.text)):
        if not _is_prose(sentence) or not MIN_SENTENCE_WORDS + 3 <= len(tokens(sentence)) <= MAX_CLOZE_WORDS:
            continue
        present = [term for term in key_terms if contains_term(sentence, term)]
        answer = next((term for term in present if _blankable(sentence, term)), None)
        if answer is None:
            continue
        score = 1.0 + 0.3 * min(len(present), 4)
        if _DEFINITION_CUES.search(sentence):
            score += 1.0
        if topic_stems and topic_stems & set(terms(sentence)):
            score += 1.5
        if _PRONOUN_START.match(sentence):
            score -= 1.0  # "It is involved in ...": the blank would lack its context
        score -= rank[_term_key(answer)] * 0.02  # central terms make better questions
        scored.append((score, index, sentence, answer))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(sentence, answer) for _, _, sentence, answer in scored]


def _blankable(sentence: str, term: str) -> bool:
    remaining = tokens(_blank(sentence, term).replace(BLANK, " "))
    content = [word for word in remaining if word not in STOPWORDS]
    return len(remaining) >= MIN_SENTENCE_WORDS and len(content) >= 3


def _blank(sentence: str, term: str) -> str:
    words = [re.escape(word) for word in normalize_space(term).split(" ")]
    pattern = r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])"
    return re.sub(pattern, BLANK, sentence, flags=re.IGNORECASE)


def _overlapping(a: str, b: str) -> bool:
    """Same term, or one inside the other ("potential" / "action potential"): not two distinct options."""
    key_a, key_b = _term_key(a), _term_key(b)
    if not key_a or not key_b:
        return True
    short, long = sorted((key_a, key_b), key=len)
    return any(long[i : i + len(short)] == short for i in range(len(long) - len(short) + 1))


def _build_mcq(
    passage: Passage, sentence: str, answer: str, pools: tuple[list[str], list[str]], difficulty: str | None
) -> McqItem | None:
    """A cloze MCQ; distractors come from the caller's pool, topped up from the material's key terms."""
    cloze = _blank(sentence, answer)
    distractors: list[str] = []
    for pool in pools:
        candidates = [
            term
            for term in pool
            if not _overlapping(term, answer)
            and not contains_term(sentence, term)
            and BLANK not in term
            and len(term) <= 80
            and all(not _overlapping(term, other) for other in distractors)
        ]
        needed = MCQ_OPTIONS - 1 - len(distractors)
        distractors += _choose_distractors(answer, candidates, difficulty, seed=sentence)[:needed]
    if len(distractors) < MCQ_OPTIONS - 1:
        return None
    question = f"Which term completes this statement from “{passage.title}” (p. {passage.page})?\n\n“{cloze}”"
    answer_index = stable_hash(question) % MCQ_OPTIONS
    options = list(distractors)
    options.insert(answer_index, answer)
    explanation = (
        f"The source says: “{sentence}” (“{passage.title}”, p. {passage.page}). The missing term is “{answer}”."
    )
    return McqItem(
        question=question, options=options, answer_index=answer_index, explanation=explanation, source=passage
    )


def _kind(term: str) -> tuple[str, bool]:
    """What sort of term this is (acronym, name, plain) and whether it reads as a plural."""
    words = term.split(" ")
    if all(word.isupper() or word[:-1].isupper() for word in words):
        kind = "acronym"
    elif any(word[:1].isupper() for word in words):
        kind = "name"
    else:
        kind = "plain"
    last = words[-1].lower()
    return kind, last.endswith("s") and not last.endswith(("ss", "us", "is", "ics"))


def _choose_distractors(answer: str, candidates: list[str], difficulty: str | None, seed: str) -> list[str]:
    """Three distractors that look like the answer (same kind of term, same number, similar length); "hard"
    also prefers terms sharing a word with the answer, "easy" takes any term of the pool."""
    answer_kind = _kind(answer)
    answer_words = len(answer.split())
    answer_stems = set(_term_key(answer))
    level = (difficulty or "medium").lower()

    def key(term: str) -> tuple[float, ...]:
        kind = _kind(term)
        mismatch = (kind[0] != answer_kind[0]) * 2 + (kind[1] != answer_kind[1])
        shape = abs(len(term.split()) - answer_words)
        tiebreak = stable_hash(seed, term)
        if level == "easy":
            return (mismatch > 1, tiebreak)
        if level == "hard":
            shared = len(set(_term_key(term)) & answer_stems)
            return (mismatch, -shared, shape, abs(len(term) - len(answer)) // 4, tiebreak)
        return (mismatch, shape, tiebreak)

    chosen: list[str] = []
    for term in sorted(candidates, key=key):
        if all(not _overlapping(term, other) and term.casefold() != other.casefold() for other in chosen):
            chosen.append(term)
        if len(chosen) == MCQ_OPTIONS - 1:
            break
    return chosen


def _build_theory(
    passage: Passage, key_terms: list[str], topic: str | None, used_terms: set[tuple[str, ...]]
) -> TheoryItem | None:
    sentences = [s for s in split_sentences(passage.text) if _is_prose(s)]
    if not sentences:
        return None
    topic_stems = set(terms(topic or "")) - _QUESTION_STEMS
    candidates = [term for term in key_terms if _term_key(term) not in used_terms]
    if topic_stems:
        candidates.sort(key=lambda term: not (set(_term_key(term)) & topic_stems))  # stable: keeps rank order
    for term in candidates:
        ranked = bm25_rank(term, [(0, index, text) for index, text in enumerate(sentences)], drop=STOPWORDS)
        relevant = [r for r in ranked if r.score > 0][:3]
        if not relevant:
            continue
        picked = sorted(relevant, key=lambda r: r.sentence_index)
        if len(picked) < 2:
            following = picked[0].sentence_index + 1
            if following < len(sentences):
                picked.append(RankedSentence(0.0, 0, following, sentences[following]))
        used_terms.add(_term_key(term))
        template = stable_hash(passage.chunk_id, term) % 2
        if template == 0:
            question = f"Explain the concept of {term} as presented in “{passage.title}” (p. {passage.page})."
        else:
            question = f"Describe what the course material says about {term} (“{passage.title}”, p. {passage.page})."
        rubric = [r.text for r in picked]
        return TheoryItem(question=question, model_answer=" ".join(rubric), rubric=rubric, source=passage)
    return None


def _squash(text: str) -> str:
    """Text for containment checks: hyphenated line breaks joined, no whitespace, case folded."""
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1-\2", text)
    return re.sub(r"\s+", "", text).casefold()


def _verify_mcq(item: McqItem) -> bool:
    options = [normalize_space(option) for option in item.options]
    if (
        len(options) != MCQ_OPTIONS
        or not all(options)
        or len({o.casefold() for o in options}) != MCQ_OPTIONS
        or not 0 <= item.answer_index < MCQ_OPTIONS
    ):
        return False
    source = item.source.text
    answer = options[item.answer_index]
    distractors = [option for index, option in enumerate(options) if index != item.answer_index]
    if not contains_term(normalize_space(source), answer):
        return False
    match = _CLOZE_IN_QUESTION.search(item.question)
    if match:
        cloze = match.group(1)
        filled = cloze.replace(BLANK, answer)
        if _squash(filled) not in _squash(source):
            return False
        sentence = filled
        if any(_squash(cloze.replace(BLANK, option)) in _squash(source) for option in distractors):
            return False  # a distractor completes the source sentence too: two correct options
    else:
        sentence = _sentence_supporting(item.question, answer, source)
        if sentence is None:
            return False
    return not any(contains_term(sentence, option) for option in distractors)


def _sentence_supporting(question: str, answer: str, source: str) -> str | None:
    sentences = [s for s in split_sentences(source) if contains_term(s, answer)]
    if not sentences:
        return None
    ranked = bm25_rank(f"{question} {answer}", [(0, index, text) for index, text in enumerate(sentences)])
    return ranked[0].text


def _verify_theory(item: TheoryItem) -> bool:
    if not item.question.strip() or not item.model_answer.strip() or not item.rubric:
        return False
    source_terms = set(terms(item.source.text))

    def supported(text: str) -> bool:
        words = terms(text)
        return bool(words) and sum(word in source_terms for word in words) / len(words) >= 0.6

    return supported(item.model_answer) and all(supported(point) for point in item.rubric)


def _as_sentence(text: str) -> str:
    text = normalize_space(text)
    return text if text[-1:] in ".!?" else f"{text}."


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"
