"""Every prompt the planner sends, the schema of each answer, and how each answer is read.

The model writes words and makes judgement calls; it never computes a schedule or a figure.
The embedded model is SmolLM2-135M, which copies its input, repeats itself and ignores
length limits, so:

- prompts are a few lines, answers are small JSON objects with fixed keys (``d1``, ``t1``
  ...) or closed choices, which llama.cpp's grammar enforces;
- every answer is screened item by item (:func:`screen_themes` ...): an item that fails is
  replaced by the scheduler's own text, and only an answer that is mostly unusable is sent
  back for repair (the client's bounded repair loop) with the reasons;
- the closed choices of the router and of a plan edit come from the registry and the plan,
  so the model cannot name a scope or a topic that does not exist; the handler still
  cross-checks what it picked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, create_model

from exammentor.contracts.plan import Intent, RouterDecision, RouterScope
from exammentor.llm.answers import (
    ANSWER_CONFIG,
    JSON_ONLY,
    ask,
    check_mostly_usable,
    clean,
    clip,
    is_degenerate,
    keyed_schema,
)
from exammentor.llm.client import ChatMessage
from services.planner.domain import SyllabusRegistry, normalise_topic_name

ROUTER_MAX_TOKENS = 120
OVERVIEW_MAX_TOKENS = 120
THEME_TOKENS_PER_DAY = 16
RATIONALE_TOKENS_PER_TOPIC = 40
EDIT_MAX_TOKENS = 160
"""Caps on generated tokens: the answers are small, and a weak model that runs on only
repeats itself (the embedded one writes about 100 tokens a second on two cores)."""

MAX_GOAL_PROMPT_CHARS = 400
"""The goal is cut to this in prompts; the rest is rarely more than repetition."""
MAX_EDIT_MOVES = 3
EDIT_PLAN_DAYS = 30
"""Learning days listed to the model when it proposes a change (a year is too long)."""

CONFIDENCE: dict[str, float] = {"low": 0.3, "medium": 0.6, "high": 0.9}
"""The router answers in words; the contract wants a number."""

_BRACES = re.compile(r"[{}\[\]<>]|```|\\n|https?://")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _words(text: str) -> list[str]:
    return normalise_topic_name(text).split()


# --- Routing -----------------------------------------------------------------------------


class RouterAnswer(BaseModel):
    """What the router model answers; closed choices, turned into a :class:`RouterDecision`.

    ``exam``, ``subject`` and ``sub_subject`` are registry keys or ``none``; the schema sent
    to the model lists them (see :func:`router_schema`).
    """

    model_config = ANSWER_CONFIG

    intent: Intent
    exam: str
    subject: str
    sub_subject: str
    confidence: Literal["low", "medium", "high"]
    needs_clarification: bool

    def to_decision(self) -> RouterDecision:
        """The answer in the contract's shape, as the model said it (not yet cross-checked).

        Returns:
            The decision.
        """
        subject = "" if self.subject == "none" else self.subject
        part = None if self.sub_subject == "none" else self.sub_subject
        return RouterDecision(
            intent=self.intent,
            exam=self.exam,
            scope=RouterScope(subject=subject, sub_subject=part),
            confidence=CONFIDENCE[self.confidence],
            needs_clarification=self.needs_clarification,
        )


@dataclass(frozen=True)
class RouterChoices:
    """The keys the router may answer with, from the registry."""

    exams: tuple[str, ...]
    subjects: tuple[str, ...]
    sub_subjects: tuple[str, ...]

    @classmethod
    def from_registry(cls, registry: SyllabusRegistry) -> RouterChoices:
        """Every exam, subject and sub-subject key of the registry, plus ``none``.

        Args:
            registry: The syllabus registry.

        Returns:
            The choices.
        """
        subjects = sorted({s.key for e in registry.exams for s in e.subjects})
        parts = sorted({p.key for e in registry.exams for s in e.subjects for p in s.sub_subjects})
        return cls(
            exams=(*(e.key for e in registry.exams), "none"),
            subjects=(*subjects, "none"),
            sub_subjects=(*parts, "none"),
        )

    def check(self, answer: RouterAnswer) -> None:
        """Refuse an answer outside the choices (a server without grammar support).

        Args:
            answer: The model's answer.

        Raises:
            ValueError: A key that is not one of the choices, with the choices.
        """
        for field, value, allowed in (
            ("exam", answer.exam, self.exams),
            ("subject", answer.subject, self.subjects),
            ("sub_subject", answer.sub_subject, self.sub_subjects),
        ):
            if value not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")


def router_schema(choices: RouterChoices) -> type[RouterAnswer]:
    """The router's answer schema with the registry's keys as closed choices.

    Args:
        choices: The keys.

    Returns:
        A subclass of :class:`RouterAnswer` whose JSON schema lists the keys.
    """
    return create_model(
        "RouterAnswer",
        __base__=RouterAnswer,
        exam=(str, Field(json_schema_extra={"enum": list(choices.exams)})),
        subject=(str, Field(json_schema_extra={"enum": list(choices.subjects)})),
        sub_subject=(str, Field(json_schema_extra={"enum": list(choices.sub_subjects)})),
    )


def router_messages(goal: str, exam_type: str, *, syllabus_pasted: bool) -> list[ChatMessage]:
    """The routing prompt.

    Args:
        goal: The student's goal.
        exam_type: The exam the request names ('' when none).
        syllabus_pasted: Whether the student pasted a syllabus.

    Returns:
        The messages.
    """
    return ask(
        "Sort a student's study request. intent: what they want. exam, subject, "
        "sub_subject: what the request names, or none. needs_clarification: true only "
        f"when the request cannot be planned as written. {JSON_ONLY}",
        f"Request: {clip(goal, MAX_GOAL_PROMPT_CHARS)}\n"
        f"Exam field: {exam_type or 'empty'}\n"
        f"Syllabus pasted: {'yes' if syllabus_pasted else 'no'}",
    )


# --- Overview ----------------------------------------------------------------------------


class OverviewAnswer(BaseModel):
    """The model's overview of a plan."""

    model_config = ANSWER_CONFIG

    overview: str


@dataclass(frozen=True)
class PlanFacts:
    """What the overview prompt says about a plan; its numbers are the only ones allowed."""

    exam_name: str
    days: int
    topics: int
    learn_hours: float
    revision_days: int
    critical: tuple[str, ...]

    @property
    def numbers(self) -> frozenset[float]:
        """Numbers the overview may quote."""
        return frozenset(
            {float(self.days), float(self.topics), self.learn_hours, float(self.revision_days)}
        )


_OVERVIEW_EXAMPLE = (
    "NEET (UG) - Physics: 10 days, 6 topics, 60 h of learning, 1 revision days. "
    "Most important: Optics, Kinematics.",
    '{"overview": "Ten focused days take you through six physics topics, starting with the '
    "foundations. Optics and Kinematics carry the most marks, so they get the most "
    'time."}',
)


def overview_messages(facts: PlanFacts) -> list[ChatMessage]:
    """The overview prompt.

    Args:
        facts: The plan's figures.

    Returns:
        The messages, with one worked example.
    """
    critical = ", ".join(facts.critical[:3]) or "none"
    return [
        {
            "role": "system",
            "content": "Write a two-sentence, encouraging overview of a student's study plan. "
            "Use only the numbers given. " + JSON_ONLY,
        },
        {"role": "user", "content": _OVERVIEW_EXAMPLE[0]},
        {"role": "assistant", "content": _OVERVIEW_EXAMPLE[1]},
        {
            "role": "user",
            "content": f"{facts.exam_name or 'Own syllabus'}: {facts.days} days, "
            f"{facts.topics} topics, {facts.learn_hours:g} h of learning, "
            f"{facts.revision_days} revision days. Most important: {critical}.",
        },
    ]


def screen_overview(answer: OverviewAnswer, facts: PlanFacts) -> str:
    """The overview, cut to two sentences, if it is usable.

    Args:
        answer: The model's answer.
        facts: The figures it was given.

    Returns:
        The text to use.

    Raises:
        ValueError: The text is unusable; the reason is written for the model to act on.
    """
    text = clean(answer.overview)
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    complete = [s for s in sentences if s.rstrip().endswith((".", "!", "?"))]
    text = " ".join(complete[:2])
    if not text:
        raise ValueError("overview: write two complete sentences ending with a full stop")
    if _BRACES.search(text):
        raise ValueError("overview: plain sentences only, no brackets, code or links")
    if is_degenerate(text):
        raise ValueError("overview: it repeats itself; say each thing once")
    words = len(text.split())
    if not 6 <= words <= 70:
        raise ValueError(f"overview: {words} words; write 6 to 70")
    stray = [n for n in _NUMBER.findall(text) if float(n) not in facts.numbers]
    if stray:
        raise ValueError(
            f"overview: the numbers {', '.join(stray)} are not in the plan; use only "
            f"{', '.join(f'{n:g}' for n in sorted(facts.numbers))}"
        )
    return text


# --- Day themes --------------------------------------------------------------------------


A = TypeVar("A", bound=BaseModel)


class ThemesAnswer(BaseModel):
    """Themes keyed ``d1``, ``d2`` ... (one per day listed in the prompt)."""

    model_config = ANSWER_CONFIG


def themes_schema(count: int) -> type[ThemesAnswer]:
    """A schema with exactly ``count`` required keys ``d1`` .. ``dN``.

    Args:
        count: Days listed in the prompt.

    Returns:
        The answer schema.
    """
    return keyed_schema("DayThemes", ThemesAnswer, "d", count)


_THEME_EXAMPLE = (
    "d1: Kinematics; Laws of Motion\nd2: revision",
    '{"d1": "Getting things moving", "d2": "Lock in what you learned"}',
)


def theme_messages(days: Sequence[str]) -> list[ChatMessage]:
    """The day-theme prompt.

    Args:
        days: What each day holds (its topics, or ``revision``), in order.

    Returns:
        The messages, with one worked example.
    """
    listing = "\n".join(f"d{i}: {clip(day, 120)}" for i, day in enumerate(days, start=1))
    return [
        {
            "role": "system",
            "content": "Give each study day a short, motivating theme of 2 to 6 words. "
            + JSON_ONLY,
        },
        {"role": "user", "content": _THEME_EXAMPLE[0]},
        {"role": "assistant", "content": _THEME_EXAMPLE[1]},
        {"role": "user", "content": listing},
    ]


def screen_themes(answer: ThemesAnswer, days: Sequence[str]) -> dict[int, str]:
    """The usable themes by position (1-based) in ``days``.

    A theme that only repeats the day's topics adds nothing and is left out quietly.

    Args:
        answer: The model's answer.
        days: What each day holds, as listed in the prompt.

    Returns:
        Position -> theme, for the usable ones.

    Raises:
        ValueError: Fewer than half are usable, with the reasons.
    """
    raw = answer.model_dump()
    usable: dict[int, str] = {}
    problems: list[str] = []
    seen: set[str] = set()
    copies = 0
    for i, listed in enumerate(days, start=1):
        theme = clean(raw.get(f"d{i}", "")).rstrip(".")
        key = normalise_topic_name(theme)
        if not key or _BRACES.search(theme) or is_degenerate(theme) or ";" in theme:
            problems.append(f"d{i}: write a short theme in plain words, not a list")
        elif not 2 <= len(theme.split()) <= 8 or len(theme) > 60:
            problems.append(f"d{i}: use 2 to 6 words")
        elif key in seen:
            problems.append(f"d{i}: repeats another day's theme; make each day's different")
        elif key in normalise_topic_name(listed):
            copies += 1  # a copy of the listing: no worse than the scheduler's, no better
        else:
            usable[i] = theme
        seen.add(key)
    check_mostly_usable(problems, len(usable) + copies, len(days))
    return usable


# --- Topic rationale ---------------------------------------------------------------------


class RationaleAnswer(BaseModel):
    """Reasons keyed ``t1``, ``t2`` ... (one per topic listed in the prompt)."""

    model_config = ANSWER_CONFIG


def rationale_schema(count: int) -> type[RationaleAnswer]:
    """A schema with exactly ``count`` required keys ``t1`` .. ``tN``.

    Args:
        count: Topics listed in the prompt.

    Returns:
        The answer schema.
    """
    return keyed_schema("TopicReasons", RationaleAnswer, "t", count)


_RATIONALE_EXAMPLE = (
    "Exam: JEE Main\nt1: Kinematics\nt2: Optics",
    '{"t1": "Motion problems come up in every paper and are the base for dynamics.", '
    '"t2": "Lens and mirror questions are quick marks once the sign rules are clear."}',
)


def rationale_messages(exam_name: str, topics: Sequence[str]) -> list[ChatMessage]:
    """The per-topic rationale prompt.

    Args:
        exam_name: The exam, for context.
        topics: Topic names, in order.

    Returns:
        The messages, with one worked example.
    """
    listing = "\n".join(f"t{i}: {clip(name, 120)}" for i, name in enumerate(topics, start=1))
    return [
        {
            "role": "system",
            "content": "For each topic write one sentence on why it matters for the exam. "
            "A different reason for each topic. " + JSON_ONLY,
        },
        {"role": "user", "content": _RATIONALE_EXAMPLE[0]},
        {"role": "assistant", "content": _RATIONALE_EXAMPLE[1]},
        {"role": "user", "content": f"Exam: {exam_name or 'own syllabus'}\n{listing}"},
    ]


def _about_another(text: str, name: str, topics: Sequence[str]) -> bool:
    """Whether a reason names another listed topic and not its own."""
    phrase = f" {normalise_topic_name(text)} "
    named = {t for t in topics if f" {normalise_topic_name(t)} " in phrase}
    return bool(named) and name not in named


def screen_rationales(answer: RationaleAnswer, topics: Sequence[str]) -> dict[str, str]:
    """The usable reasons by topic name.

    Args:
        answer: The model's answer.
        topics: The topics as listed in the prompt.

    Returns:
        Topic name -> one sentence, for the usable ones.

    Raises:
        ValueError: Fewer than half are usable, with the reasons.
    """
    raw = answer.model_dump()
    usable: dict[str, str] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(topics, start=1):
        text = clean(raw.get(f"t{i}", ""))
        first = _SENTENCE_END.split(text)[0].strip() if text else ""
        key = normalise_topic_name(first)
        if not key or _BRACES.search(first) or is_degenerate(first):
            problems.append(f"t{i}: write one plain sentence")
        elif key == normalise_topic_name(name):
            problems.append(f"t{i}: say why {name} matters, not only its name")
        elif not 5 <= len(first.split()) <= 35:
            problems.append(f"t{i}: use 5 to 35 words")
        elif key in seen:
            problems.append(f"t{i}: repeats another topic's reason; give {name} its own")
        elif _about_another(first, name, topics):
            problems.append(f"t{i}: is about another topic; say why {name} matters")
        else:
            usable[name] = first if first.endswith((".", "!", "?")) else first + "."
        seen.add(key)
    check_mostly_usable(problems, len(usable), len(topics))
    return usable


# --- Plan edits (the fix loop) -----------------------------------------------------------


class TopicMoveProposal(BaseModel):
    """Move every learning session of ``topic`` to ``to_day``."""

    model_config = ANSWER_CONFIG

    topic: str
    to_day: int


class PlanEditAnswer(BaseModel):
    """The model's proposed change to a plan."""

    model_config = ANSWER_CONFIG

    moves: list[TopicMoveProposal] = Field(max_length=MAX_EDIT_MOVES)


def plan_edit_schema(topics: Sequence[str], study_days: Sequence[int]) -> type[PlanEditAnswer]:
    """The edit schema with the plan's topics and learning days as closed choices.

    Args:
        topics: Topic names that may be moved.
        study_days: Day numbers that may receive them.

    Returns:
        A subclass of :class:`PlanEditAnswer` whose JSON schema lists the choices.
    """
    move = create_model(
        "TopicMove",
        __base__=TopicMoveProposal,
        topic=(str, Field(json_schema_extra={"enum": list(topics)})),
        to_day=(int, Field(json_schema_extra={"enum": list(study_days)})),
    )
    moves: Any = list[move]
    return create_model(
        "PlanEdit",
        __base__=PlanEditAnswer,
        moves=(moves, Field(min_length=1, max_length=MAX_EDIT_MOVES)),
    )


def edit_messages(goal: str, plan_lines: Iterable[str], critique: str) -> list[ChatMessage]:
    """The prompt of one fix round.

    Args:
        goal: The student's goal (the wish to honour).
        plan_lines: ``day N: topic (h), ...`` lines of the current plan.
        critique: Why the previous change failed the check ('' in the first round).

    Returns:
        The messages.
    """
    feedback = (
        f"\nYour last change failed the check: {clip(critique, 600)}\nPropose another change."
        if critique
        else ""
    )
    return ask(
        "Change a study plan so it does what the student asks, by moving topics to other "
        f"days. Move the topics the wish names. Keep every day within its hours. {JSON_ONLY}",
        f"Wish: {clip(goal, MAX_GOAL_PROMPT_CHARS)}\nPlan:\n" + "\n".join(plan_lines) + feedback,
    )


def check_edit(
    answer: PlanEditAnswer, *, movable: Sequence[str], study_days: Sequence[int]
) -> None:
    """Refuse an edit that names a topic or a day the plan does not have.

    Args:
        answer: The proposed edit.
        movable: Topics that exist in the plan.
        study_days: Learning days that may receive topics.

    Raises:
        ValueError: What is wrong, in words the model can act on.
    """
    known = {normalise_topic_name(name) for name in movable}
    days = set(study_days)
    for move in answer.moves:
        if normalise_topic_name(move.topic) not in known:
            raise ValueError(f"topic {move.topic!r} is not in the plan")
        if move.to_day not in days:
            raise ValueError(
                f"day {move.to_day} is not a learning day; use one of "
                f"{', '.join(str(d) for d in study_days[:20])}"
            )


def wish_not_met(wished: Sequence[str]) -> str:
    """What to tell the model when its edit leaves the wished topics where they were.

    Args:
        wished: Topics the goal names.

    Returns:
        The reason, for the repair prompt.
    """
    return f"move {' or '.join(wished[:3])} to another day, as the wish says"
