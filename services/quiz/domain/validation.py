"""Checking and repairing the questions a model wrote, before any student sees them.

A question is kept only when it is a good question of its type:

- **multiple choice**: a non-empty text; exactly 4 distinct, non-empty options (compared
  after :func:`normalised`), none of them the question itself; exactly one correct option;
- **true/false**: the options ``True`` and ``False`` and one of them correct;
- **fill-in-the-blank**: a text with one blank (``___``), at least one accepted answer, and
  no accepted answer already written in the text;
- every type: a non-empty explanation and concept, texts within the length limits, no
  looping text.

What can be repaired is repaired, and each repair is reported: whitespace and stray quotes,
option labels (``"B) Paris"``), an answer given as the option's text or letter instead of its
index, a duplicated or empty option or a copy of the question among more than 4 options, a
missing difficulty or concept (the request's), other spellings of the type, of ``True`` and
``False`` and of the blank. What cannot be repaired (two correct answers, an index out of
range, too few distinct options, an empty text or explanation ...) is reported per question,
in words a model can act on, so the caller can ask again within its bound.

Across the quiz: question texts are distinct, questions the student saw recently are not
asked again, and at most the requested number is kept; :attr:`QuestionCheck.short_by` says
how many are missing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exammentor.contracts.quiz import (
    MAX_TEXT_CHARS,
    MULTIPLE_CHOICE_OPTIONS,
    TRUE_FALSE_OPTIONS,
    Question,
    QuestionDifficulty,
    QuestionType,
)
from services.quiz.domain.text import normalised, tidy

BLANK = "___"
"""How a fill-in-the-blank question marks its blank."""

_LETTERS = "ABCDEFGH"
_LABEL = re.compile(r"^\s*(?:\(?([A-Ha-h])[).:]|([1-8])[).:])\s+")
_LETTER_ANSWER = re.compile(r"^\(?(?:option\s+)?([A-Ha-h])\)?[.:)]?$", re.IGNORECASE)
_SEVERAL_LETTERS = re.compile(r"^\(?[A-Ha-h]\)?(?:\s*(?:,|&|and|/)\s*\(?[A-Ha-h]\)?)+$")
_BLANK_MARK = re.compile(r"_{2,}|\[\s*blank\s*\]|\(\s*blank\s*\)|\.{3,}|\u2026", re.IGNORECASE)
_TYPE_SPELLINGS: dict[str, QuestionType] = {
    "multiple choice": "multiple_choice",
    "fill in the blank": "fill_in_the_blank",
    "true false": "true_false",
    "mcq": "multiple_choice",
    "multiple choice question": "multiple_choice",
    "true or false": "true_false",
    "tf": "true_false",
    "boolean": "true_false",
    "fill in the blanks": "fill_in_the_blank",
    "fill blank": "fill_in_the_blank",
    "blank": "fill_in_the_blank",
}
_DIFFICULTIES: tuple[QuestionDifficulty, ...] = ("easy", "medium", "hard")

DraftAnswer = int | str | list[int | str] | None
"""How a model may say which answer is correct: an index, the option's text or letter, or
(wrongly) several of them."""


class QuestionDraft(BaseModel):
    """A question as a model wrote it: every field optional, nothing checked yet."""

    model_config = ConfigDict(extra="ignore")

    text: str = ""
    question_type: str = ""
    options: list[str] = Field(default_factory=list)
    answer: DraftAnswer = None
    explanation: str = ""
    concept: str = ""
    difficulty: str = ""
    accepted_answers: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class QuestionPolicy:
    """Limits on a question; the defaults are what the quiz service uses.

    Attributes:
        max_text_chars: Longest question text.
        max_option_chars: Longest option or accepted answer.
        max_explanation_chars: Longest explanation.
        loop_min_words: Texts with at least this many words are checked for looping.
        loop_min_distinct: Share of distinct words below which a text loops.
    """

    max_text_chars: int = 400
    max_option_chars: int = 200
    max_explanation_chars: int = 800
    loop_min_words: int = 8
    loop_min_distinct: float = 0.5


DEFAULT_QUESTION_POLICY = QuestionPolicy()


class Rejection(BaseModel):
    """A draft that could not be used, and why."""

    model_config = ConfigDict(frozen=True)

    position: int
    """1-based position of the draft in the model's answer."""
    reasons: tuple[str, ...]


class QuestionCheck(BaseModel):
    """The outcome of checking a model's questions against a request."""

    model_config = ConfigDict(frozen=True)

    requested: int
    questions: tuple[Question, ...]
    """The usable questions, in the model's order, at most ``requested``."""
    repairs: tuple[str, ...] = ()
    rejections: tuple[Rejection, ...] = ()

    @property
    def short_by(self) -> int:
        """How many questions are missing from the requested count."""
        return max(0, self.requested - len(self.questions))

    def problems(self) -> list[str]:
        """Why drafts were rejected, one line each (``q2: ...``), for a repair prompt."""
        return [f"q{r.position}: {reason}" for r in self.rejections for reason in r.reasons]


def question_id(topic: str, text: str) -> str:
    """A stable id for a question: the same topic and text give the same id.

    Args:
        topic: The quiz topic.
        text: The question text.

    Returns:
        ``q_`` and 16 hex digits.
    """
    digest = hashlib.sha256(f"{normalised(topic)}\n{normalised(text)}".encode()).hexdigest()
    return f"q_{digest[:16]}"


def check_question(
    draft: QuestionDraft,
    *,
    topic: str,
    difficulty: QuestionDifficulty,
    policy: QuestionPolicy = DEFAULT_QUESTION_POLICY,
) -> tuple[Question | None, list[str], list[str]]:
    """Check one draft and repair what can be repaired.

    Args:
        draft: The model's question.
        topic: The quiz topic (for the id, and the concept when the draft has none).
        difficulty: The difficulty asked for (used when the draft has none).
        policy: The limits.

    Returns:
        ``(question, repairs, reasons)``: the question (``None`` when it cannot be used),
        what was repaired, and why it was rejected.
    """
    repairs: list[str] = []
    reasons: list[str] = []
    text = tidy(draft.text)
    if not normalised(text):
        reasons.append("text: empty; write the question")
    elif len(text) > policy.max_text_chars:
        reasons.append(f"text: {len(text)} characters; keep it under {policy.max_text_chars}")
    elif _loops(text, policy):
        reasons.append("text: it repeats itself; ask one clear question")
    explanation = tidy(draft.explanation)
    if not normalised(explanation):
        reasons.append("explanation: empty; say why the answer is right")
    elif len(explanation) > policy.max_explanation_chars:
        explanation = explanation[: policy.max_explanation_chars - 1].rstrip() + "\u2026"
        repairs.append("explanation shortened")
    elif _loops(explanation, policy):
        reasons.append("explanation: it repeats itself; say it once")
    concept = tidy(draft.concept)
    if not normalised(concept):
        concept = tidy(topic)
        repairs.append("concept missing: the topic used")
    level = normalised(draft.difficulty)
    chosen_difficulty: QuestionDifficulty = difficulty
    for known in _DIFFICULTIES:
        if level == known:
            chosen_difficulty = known
    if level and level != chosen_difficulty:
        repairs.append(f"difficulty {clip_text(draft.difficulty)!r} replaced by {difficulty}")
    kind = _question_type(draft, repairs)
    body: dict[str, object]
    if kind == "fill_in_the_blank":
        text, body = _blank_body(text, draft, policy, repairs, reasons)
    else:
        body = _choice_body(
            kind, text, draft=draft, policy=policy, repairs=repairs, reasons=reasons
        )
    if reasons:
        return None, repairs, reasons
    try:
        question = Question.model_validate(
            {
                "id": question_id(topic, text),
                "text": text,
                "question_type": kind,
                "explanation": explanation,
                "difficulty": chosen_difficulty,
                "concept_tested": concept[:MAX_TEXT_CHARS],
                **body,
            }
        )
    except ValidationError as exc:
        # The checks above should leave nothing for the contract to refuse; if they do, the
        # contract's word is final and the draft is rejected with it.
        return None, repairs, [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
    return question, repairs, []


def check_questions(
    drafts: Sequence[QuestionDraft],
    *,
    requested: int,
    topic: str,
    difficulty: QuestionDifficulty,
    seen: Collection[str] = (),
    policy: QuestionPolicy = DEFAULT_QUESTION_POLICY,
) -> QuestionCheck:
    """Check a model's questions against the request.

    Args:
        drafts: The model's questions, in order.
        requested: How many questions were asked for.
        topic: The quiz topic.
        difficulty: The difficulty asked for.
        seen: Texts of questions the student saw recently; they are not asked again.
        policy: The limits.

    Returns:
        The usable questions (at most ``requested``), the repairs and the rejections.
    """
    seen_keys = {normalised(text) for text in seen}
    taken: dict[str, int] = {}
    questions: list[Question] = []
    repairs: list[str] = []
    rejections: list[Rejection] = []
    for position, draft in enumerate(drafts, start=1):
        question, fixed, reasons = check_question(
            draft, topic=topic, difficulty=difficulty, policy=policy
        )
        repairs.extend(f"q{position}: {note}" for note in fixed)
        if question is not None:
            key = normalised(question.text)
            if key in taken:
                reasons = [f"text: repeats q{taken[key]}; ask something different"]
            elif key in seen_keys:
                reasons = ["text: the student saw this question recently; ask another"]
            else:
                taken[key] = position
        if reasons or question is None:
            rejections.append(Rejection(position=position, reasons=tuple(reasons)))
        elif len(questions) < requested:
            questions.append(question)
        else:
            repairs.append(f"q{position}: more questions than the {requested} requested; dropped")
    return QuestionCheck(
        requested=requested,
        questions=tuple(questions),
        repairs=tuple(repairs),
        rejections=tuple(rejections),
    )


# --- Parts of one question ---------------------------------------------------------------


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "question"


def _loops(text: str, policy: QuestionPolicy) -> bool:
    found = normalised(text).split()
    return (
        len(found) >= policy.loop_min_words
        and len(set(found)) / len(found) < policy.loop_min_distinct
    )


def _question_type(draft: QuestionDraft, repairs: list[str]) -> QuestionType:
    # normalised() reads "multiple_choice" as "multiple choice", so one table holds both.
    spelled = normalised(draft.question_type)
    kind = _TYPE_SPELLINGS.get(spelled)
    if kind is None:
        # Nothing usable said: the options tell.
        options = {normalised(option) for option in draft.options}
        if options and options <= {"true", "false"}:
            kind = "true_false"
        elif not draft.options and (draft.accepted_answers or _BLANK_MARK.search(draft.text)):
            kind = "fill_in_the_blank"
        else:
            kind = "multiple_choice"
        if spelled:
            repairs.append(f"question_type {clip_text(draft.question_type)!r} read as {kind}")
    elif draft.question_type.strip() != kind:
        repairs.append(f"question_type {clip_text(draft.question_type)!r} read as {kind}")
    return kind


def _strip_labels(options: list[str], repairs: list[str]) -> list[str]:
    """Drop ``A)``/``1.`` labels when every option carries one (a single one may be content)."""
    if len(options) > 1 and all(_LABEL.match(option) for option in options):
        repairs.append("option labels removed")
        return [tidy(_LABEL.sub("", option, count=1)) for option in options]
    return options


def _resolve(answer: DraftAnswer, options: Sequence[str]) -> tuple[set[str], str]:
    """The normalised text(s) of the option(s) the draft marks correct, or why none.

    Tried in order: an index (0-based, as the contract's), the option's text, its letter
    (``B``, ``(b)``, ``option B``), an index written as digits.
    """
    if answer is None or answer in ("", []):
        return set(), "answer: missing; give the correct option"
    if isinstance(answer, list):
        found: set[str] = set()
        for item in answer:
            texts, reason = _resolve(item, options)
            if reason:
                return set(), reason
            found |= texts
        return found, ""
    if isinstance(answer, bool):
        return _resolve(str(answer), options)
    if isinstance(answer, int):
        if not 0 <= answer < len(options):
            return set(), (
                f"answer: index {answer} is out of range 0..{len(options) - 1}; "
                "copy the correct option's text"
            )
        return {normalised(options[answer])}, ""
    written = tidy(answer)
    by_text = {normalised(o) for o in options if normalised(o) == normalised(written)}
    if by_text:
        return by_text, ""
    letter = _LETTER_ANSWER.match(written)
    if letter:
        return _resolve(_LETTERS.index(letter.group(1).upper()), options)
    if _SEVERAL_LETTERS.match(written):
        letters = re.findall(r"\b[A-Ha-h]\b", written)
        return _resolve([_LETTERS.index(x.upper()) for x in letters], options)
    # isdigit() is also true of "²" and other digits int() refuses: ASCII digits only.
    if written.isascii() and written.isdigit():
        return _resolve(int(written), options)
    return set(), f"answer: {clip_text(written)!r} is not one of the options; copy one exactly"


def clip_text(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for a reason's quote.

    Args:
        text: Any text.
        limit: Most characters kept.

    Returns:
        The clipped text.
    """
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _choice_body(
    kind: QuestionType,
    text: str,
    *,
    draft: QuestionDraft,
    policy: QuestionPolicy,
    repairs: list[str],
    reasons: list[str],
) -> dict[str, object]:
    raw = _strip_labels([tidy(option) for option in draft.options], repairs)
    if kind == "true_false":
        return _true_false_body(raw, draft, repairs, reasons)
    correct, why = _resolve(draft.answer, raw)
    if why:
        reasons.append(why)
        return {}
    if len(correct) > 1:
        reasons.append(
            f"answer: {len(correct)} options marked correct; exactly one must be correct"
        )
        return {}
    (correct_key,) = correct
    if not correct_key:
        reasons.append("answer: the correct option is empty; write it")
        return {}
    question_key = normalised(text)
    options: list[str] = []
    keys: list[str] = []
    dropped: list[str] = []
    for option in raw:
        key = normalised(option)
        if not key:
            dropped.append("an empty option")
        elif key in keys:
            dropped.append(f"a duplicate of {clip_text(option)!r}")
        elif question_key and key == question_key:
            if key == correct_key:
                reasons.append("answer: the correct option repeats the question; write the answer")
                return {}
            dropped.append("the question repeated as an option")
        elif len(option) > policy.max_option_chars:
            if key == correct_key:
                reasons.append(
                    f"options: the correct option is over {policy.max_option_chars} characters"
                )
                return {}
            dropped.append("an overlong option")
        else:
            options.append(option)
            keys.append(key)
    if len(options) < MULTIPLE_CHOICE_OPTIONS:
        detail = f" ({', '.join(dropped)} left out)" if dropped else ""
        reasons.append(
            f"options: {len(options)} distinct non-empty options{detail}; write exactly "
            f"{MULTIPLE_CHOICE_OPTIONS} different ones"
        )
        return {}
    if dropped:
        repairs.append(f"left out {', '.join(dropped)}")
    if len(options) > MULTIPLE_CHOICE_OPTIONS:
        # Keep the correct option and the first distractors.
        index = keys.index(correct_key)
        keep = sorted([index, *[i for i in range(len(options)) if i != index][:3]])
        repairs.append(f"{len(options)} options cut to {MULTIPLE_CHOICE_OPTIONS}")
        options = [options[i] for i in keep]
        keys = [keys[i] for i in keep]
    if not isinstance(draft.answer, int) or isinstance(draft.answer, bool):
        repairs.append("answer given as text: turned into its index")
    return {"options": options, "correct_option_index": keys.index(correct_key)}


def _true_false_body(
    raw: list[str], draft: QuestionDraft, repairs: list[str], reasons: list[str]
) -> dict[str, object]:
    spelled = [normalised(option) for option in raw]
    if spelled and sorted(spelled) != ["false", "true"]:
        reasons.append("options: a true/false question has the options True and False only")
        return {}
    if spelled != ["true", "false"]:
        repairs.append("true/false options set to True, False")
    order = spelled or ["true", "false"]
    answer = draft.answer
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(order):
        answer = order[answer]
    correct, why = _resolve(
        str(answer).lower() if isinstance(answer, bool) else answer, list(TRUE_FALSE_OPTIONS)
    )
    if why:
        reasons.append(why)
        return {}
    if len(correct) > 1:
        reasons.append("answer: both True and False marked correct; exactly one must be")
        return {}
    (key,) = correct
    return {
        "options": list(TRUE_FALSE_OPTIONS),
        "correct_option_index": 0 if key == "true" else 1,
    }


def _blank_body(
    text: str,
    draft: QuestionDraft,
    policy: QuestionPolicy,
    repairs: list[str],
    reasons: list[str],
) -> tuple[str, dict[str, object]]:
    marks = _BLANK_MARK.findall(text)
    if not marks:
        reasons.append(f"text: no blank; mark the missing word with {BLANK}")
    elif len(marks) > 1:
        reasons.append(f"text: {len(marks)} blanks; a question has exactly one {BLANK}")
    elif marks[0] != BLANK:
        text = _BLANK_MARK.sub(BLANK, text)
        repairs.append(f"blank written as {BLANK}")
    candidates = list(draft.accepted_answers)
    if isinstance(draft.answer, str):
        candidates.insert(0, draft.answer)
    elif isinstance(draft.answer, int) and not isinstance(draft.answer, bool):
        if 0 <= draft.answer < len(draft.options):
            candidates.insert(0, draft.options[draft.answer])
    elif isinstance(draft.answer, list):
        candidates[:0] = [str(item) for item in draft.answer]
    accepted: list[str] = []
    for candidate in candidates:
        answer = tidy(candidate)
        key = normalised(answer)
        if key and key not in {normalised(a) for a in accepted}:
            accepted.append(answer)
    if not accepted:
        reasons.append("answer: missing; give the word that fills the blank")
        return text, {}
    if any(len(answer) > policy.max_option_chars for answer in accepted):
        reasons.append(f"answer: over {policy.max_option_chars} characters; give a word or two")
        return text, {}
    padded = f" {normalised(text)} "
    given_away = [a for a in accepted if f" {normalised(a)} " in padded]
    if given_away:
        reasons.append(f"text: it already contains the answer {clip_text(given_away[0])!r}")
        return text, {}
    if draft.options:
        repairs.append("options of a fill-in-the-blank question left out")
    return text, {"options": [], "correct_option_index": None, "accepted_answers": accepted}
