"""Commands the planner handles: ``plan.generate`` v1, a verified study plan with its history.

Every plan route of the gateway sends the same command: verification costs no model call, so
there is no reason to serve an unverified plan; the routes differ only in what they return
of the result and in whether they relay the progress as it happens.

One run of :class:`PlanWorkflow`:

1. **Read the syllabus**: a pasted one is parsed (registry names help it read commas and
   headings); without one the exam must be in the registry. Bad input is refused here,
   before any progress is streamed or any model is called.
2. **Route**: a structured model call reads intent, exam and scope from the goal; the
   answer is cross-checked (:func:`cross_check`): a scope is accepted only when the registry
   knows it *and* the student's own words support it. A goal that names what the registry
   cannot place (NEET mathematics, an exam other than the one chosen) gets a clarifying
   question as its result instead of a guessed plan.
3. **Topics** (:func:`resolve_topics`): the pasted syllabus wins; the registry narrows it to
   the scope and enriches it (weights, hours, prerequisites); the registry's own topics are
   planned when nothing was pasted.
4. **Schedule and verify** with the pure domain (exact; a syllabus that does not fit is
   refused with the numbers or planned with topics dropped, as the request chooses).
5. **Fix loop**: when the goal asks for an order the scheduler cannot express ("Genetics
   first"), the model proposes moves, the verifier checks the moved plan, and a failed check
   goes back as the critique, for at most ``max_fix_rounds``. Every version is kept with its
   verification and a diff; the last version that passed is the final plan.
6. **Words**: the model writes the overview, day themes and per-topic reasons; each item is
   screened, and the scheduler's own text stays wherever the model's does not pass. No model
   failure fails a plan.

The handler around it answers identical requests from the plan cache, stores the plan for
the user (and study session) and emits ``plan.generated`` and ``plan.verified`` v1.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel

from exammentor.commands import CommandContext, CommandRejected, CommandRouter, Outcome
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.plan import (
    DailyPlan,
    PlanRequest,
    PlanVerification,
    PlanVersion,
    RouterDecision,
    RouterScope,
    StudyPlan,
    Topic,
    VerificationSummary,
    VerifiedPlanHistory,
)
from exammentor.db import Connection
from exammentor.llm import ChatMessage, LLMClient, LLMError, LLMInvalidOutput
from exammentor.logs import get_logger
from exammentor.worker import WorkerResources
from services.planner import prompts, repo
from services.planner.domain import (
    CapacityError,
    CapacityReport,
    EmptySyllabusError,
    ExamSyllabus,
    NoStudyDaysError,
    ParsedTopic,
    PlanningError,
    RegistryTopic,
    Scope,
    SyllabusRegistry,
    SyllabusTopic,
    UnknownScopeError,
    diff_plans,
    enrich_topics,
    load_registry,
    narrow_to_scope,
    normalise_topic_name,
    parse_syllabus,
    schedule_plan,
    topics_from_registry,
    verify_plan,
)
from services.planner.settings import PlannerSettings, planner_settings

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

PIPELINE_VERSION = 1
"""Part of every cache key: bump it when the same inputs should give a different plan."""
OWN_SYLLABUS = "Own syllabus"
"""The exam name of a plan whose syllabus matches no exam of the registry."""

ProgressSink = Callable[[dict[str, Any]], Awaitable[None]]
"""Where the workflow reports its stages (``ctx.progress`` in the service)."""


async def _no_progress(_: dict[str, Any]) -> None:
    return None


# --- Routing: the model's reading, cross-checked against the registry and the words -----


def _phrase(text: str) -> str:
    return f" {normalise_topic_name(text)} "


def _mentions(goal: str, names: Iterable[str]) -> bool:
    """Whether the goal (already a padded phrase) contains one of ``names`` word for word."""
    return any((key := normalise_topic_name(name)) and f" {key} " in goal for name in names)


def _common_prefix(a: str, b: str) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def _supporting_word(goal: str, names: Iterable[str]) -> str | None:
    """A word of the goal that shares a stem with one of ``names`` ("chemical" ~ "chem").

    This is how the model's reading of a paraphrase is accepted: the student must have used
    a word with the same stem as the scope the model picked.
    """
    words = [w for w in goal.split() if len(w) >= 4]
    for name in names:
        for candidate in normalise_topic_name(name).split():
            if len(candidate) < 4:
                continue
            for word in words:
                if _common_prefix(word, candidate) >= min(len(candidate), 5):
                    return word
    return None


def exams_mentioned(registry: SyllabusRegistry, goal: str) -> list[ExamSyllabus]:
    """Exams the goal names (key, name or alias, word for word).

    Args:
        registry: The registry.
        goal: The student's goal.

    Returns:
        The exams, in registry order.
    """
    phrase = _phrase(goal)
    return [e for e in registry.exams if _mentions(phrase, (e.key, e.name, *e.aliases))]


def scopes_mentioned(exam: ExamSyllabus, goal: str) -> list[Scope]:
    """Subjects and sub-subjects of ``exam`` the goal names.

    A sub-subject is found by its name or alias ("organic chemistry"), or by its bare key
    ("organic") when its subject is named too; a sub-subject implies its subject.

    Args:
        exam: The exam.
        goal: The student's goal.

    Returns:
        The scopes, in registry order.
    """
    phrase = _phrase(goal)
    scopes: list[Scope] = []
    for subject in exam.subjects:
        subject_named = _mentions(phrase, (subject.key, subject.name, *subject.aliases))
        parts = [
            part
            for part in subject.sub_subjects
            if _mentions(phrase, (part.name, *part.aliases))
            or (subject_named and _mentions(phrase, (part.key,)))
        ]
        if parts:
            scopes.extend(Scope(exam.key, subject.key, part.key) for part in parts)
        elif subject_named:
            scopes.append(Scope(exam.key, subject.key))
    return scopes


def foreign_subjects(registry: SyllabusRegistry, exam: ExamSyllabus, goal: str) -> list[str]:
    """Subject names the goal uses that ``exam`` does not have (``maths`` for NEET).

    Only names the registry knows for some exam count (its subjects and sub-subjects), so a
    topic word is never mistaken for a subject.

    Args:
        registry: The registry.
        exam: The exam being planned.
        goal: The student's goal.

    Returns:
        The names as the registry writes them, each once.
    """
    phrase = _phrase(goal)
    own = {
        normalise_topic_name(name)
        for subject in exam.subjects
        for name in (
            subject.key,
            subject.name,
            *subject.aliases,
            *(n for part in subject.sub_subjects for n in (part.key, part.name, *part.aliases)),
        )
    }
    found: list[str] = []
    for other in registry.exams:
        for subject in other.subjects:
            groups = [(subject.name, (subject.key, subject.name, *subject.aliases))]
            groups += [(part.name, (part.name, *part.aliases)) for part in subject.sub_subjects]
            for label, names in groups:
                named = [n for n in names if _mentions(phrase, (n,))]
                if (
                    named
                    and all(normalise_topic_name(n) not in own for n in named)
                    and label not in found
                ):
                    found.append(label)
    # "Organic Chemistry" mentioned means "Chemistry" is too: report the longer name only.
    return [f for f in found if not any(f != g and _phrase(f) in _phrase(g) for g in found)]


def _overlap(parsed: Sequence[ParsedTopic], exam: ExamSyllabus) -> int:
    names: set[str] = set()
    for topic in exam.topics:
        names.update(normalise_topic_name(n) for n in (*topic.names(), *topic.subtopics))
    return sum(1 for item in parsed if normalise_topic_name(item.name) in names)


@dataclass(frozen=True)
class Routing:
    """What a request is about, after the cross-check.

    Attributes:
        exam: The registry exam used for scope and enrichment, if any.
        exam_name: The name written into the plan.
        scopes: Subjects or sub-subjects to plan (empty: the whole exam or syllabus).
        decision: The cross-checked decision.
        model_decision: What the model answered, as it answered (None: no answer).
        model_status: ``ok``, ``invalid``, ``unavailable`` or ``off``.
        notes: What was decided and why, in words for the client.
    """

    exam: ExamSyllabus | None
    exam_name: str
    scopes: tuple[Scope, ...]
    decision: RouterDecision
    model_decision: RouterDecision | None
    model_status: str
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The routing as reported to the client."""
        return {
            "decision": self.decision.model_dump(mode="json"),
            "model_decision": (
                self.model_decision.model_dump(mode="json") if self.model_decision else None
            ),
            "model_status": self.model_status,
            "exam": self.exam.key if self.exam else None,
            "scopes": [
                {"exam": s.exam, "subject": s.subject, "sub_subject": s.sub_subject}
                for s in self.scopes
            ],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Clarification:
    """The answer to a request that cannot be planned without guessing."""

    question: str
    options: tuple[str, ...]
    routing: Routing

    def as_result(self) -> dict[str, Any]:
        """The request's result."""
        return {
            "needs_clarification": True,
            "clarifying_question": self.question,
            "options": list(self.options),
            "routing": self.routing.as_dict(),
        }


def _scope_label(exam: ExamSyllabus, scope: Scope) -> str:
    subject = next(s for s in exam.subjects if s.key == scope.subject)
    if scope.sub_subject is None:
        return subject.name
    return next(p.name for p in subject.sub_subjects if p.key == scope.sub_subject)


def _join(names: Sequence[str], last: str = "or") -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {last} {names[-1]}"


def _model_scope(
    registry: SyllabusRegistry, exam: ExamSyllabus, goal: str, model: RouterDecision | None
) -> tuple[Scope | None, str | None]:
    """The model's scope when the registry knows it and the goal's words support it."""
    if model is None or not model.scope.subject:
        return None, None
    try:
        scope = registry.resolve_scope(exam.key, model.scope.subject, model.scope.sub_subject)
    except UnknownScopeError as exc:
        return None, f"the model's scope was not accepted: {exc}"
    assert scope.subject is not None
    subject = next(s for s in exam.subjects if s.key == scope.subject)
    phrase = _phrase(goal)
    if _supporting_word(phrase, (subject.key, subject.name, *subject.aliases)) is None:
        return None, (
            f"the model's subject {subject.name!r} was not accepted: the goal does not name it"
        )
    if scope.sub_subject is not None:
        part = next(p for p in subject.sub_subjects if p.key == scope.sub_subject)
        if _supporting_word(phrase, (part.key, part.name, *part.aliases)) is None:
            scope = Scope(exam.key, subject.key)
    return scope, f"scope {_scope_label(exam, scope)} read from the goal by the model"


def cross_check(
    registry: SyllabusRegistry,
    request: PlanRequest,
    parsed: Sequence[ParsedTopic] | None,
    model: RouterDecision | None,
    model_status: str = "ok",
) -> Routing | Clarification:
    """Decide exam and scope from the request, the student's words and the model's answer.

    The request's own fields win, then what the goal names word for word, then the model's
    reading where the registry knows it and a word of the goal supports it; a pasted
    syllabus with no exam named is matched to the registry exam it overlaps most.

    Args:
        registry: The syllabus registry.
        request: The request.
        parsed: The pasted syllabus, parsed (None when nothing was pasted).
        model: The router model's answer, if there was one.
        model_status: How the model call went, for the report.

    Returns:
        The routing, or a clarifying question when the request names something the
        registry cannot place.

    Raises:
        UnknownScopeError: Nothing was pasted and the registry does not know the exam.
    """
    notes: list[str] = []
    named_exam = registry.find_exam(request.exam_type) if request.exam_type else None
    if request.exam_type and named_exam is None and parsed is None:
        raise UnknownScopeError(
            f"unknown exam {request.exam_type!r}", [e.key for e in registry.exams]
        )
    mentioned = exams_mentioned(registry, request.goal)

    def clarify(question: str, options: Sequence[str], exam: ExamSyllabus | None) -> Clarification:
        decision = RouterDecision(
            intent="plan",
            exam=exam.key if exam else "none",
            confidence=0.3,
            needs_clarification=True,
            clarifying_question=question,
        )
        routing = Routing(
            exam, exam.name if exam else "", (), decision, model, model_status, tuple(notes)
        )
        return Clarification(question, tuple(options), routing)

    exam: ExamSyllabus | None
    if named_exam is not None:
        others = [e for e in mentioned if e.key != named_exam.key]
        if others and len(others) == len(mentioned):
            return clarify(
                f"You chose {named_exam.name}, but your goal mentions "
                f"{_join([e.name for e in others], 'and')}. Which exam should this plan "
                "prepare you for?",
                [named_exam.key, *(e.key for e in others)],
                named_exam,
            )
        exam = named_exam
    else:
        assert parsed is not None  # PlanRequest needs a syllabus or an exam_type
        candidates = mentioned or list(registry.exams)
        scored = sorted(
            ((_overlap(parsed, e), e.key == (model.exam if model else ""), e) for e in candidates),
            key=lambda item: (item[0], item[1]),
            reverse=True,
        )
        exam = scored[0][2] if scored and (scored[0][0] > 0 or mentioned) else None
        if exam is not None:
            notes.append(f"your syllabus was matched to {exam.name} for weights and prerequisites")
    if model is not None and model.exam not in ("none", exam.key if exam else "none"):
        notes.append(f"the model's exam {model.exam!r} was not accepted")

    scopes: list[Scope] = []
    if exam is not None:
        scopes = scopes_mentioned(exam, request.goal)
        foreign = foreign_subjects(registry, exam, request.goal)
        if foreign and parsed is None:
            names = [s.name for s in exam.subjects]
            return clarify(
                f"{exam.name} has no {_join(foreign, 'and')} in its syllabus. Which part "
                f"should the plan cover: {_join(names)}, or the whole exam?",
                [*(s.key for s in exam.subjects), "all"],
                exam,
            )
        if foreign:
            notes.append(
                f"{_join(foreign, 'and')} is not part of {exam.name}; your own syllabus is planned"
            )
        if not scopes:
            scope, note = _model_scope(registry, exam, request.goal, model)
            if note:
                notes.append(note)
            if scope is not None:
                scopes = [scope]

    exam_name = _exam_name(request, exam, named_exam is not None, scopes)
    agreed = (
        model is not None
        and exam is not None
        and model.exam == exam.key
        and len(scopes) <= 1
        and (model.scope.subject or None) == (scopes[0].subject if scopes else None)
    )
    single = scopes[0] if len(scopes) == 1 else None
    decision = RouterDecision(
        intent="plan",
        exam=exam.key if exam else "none",
        scope=RouterScope(
            subject=single.subject or "" if single else "",
            sub_subject=single.sub_subject if single else None,
        ),
        confidence=0.9 if agreed else 0.6,
        needs_clarification=False,
    )
    return Routing(exam, exam_name, tuple(scopes), decision, model, model_status, tuple(notes))


def _exam_name(
    request: PlanRequest, exam: ExamSyllabus | None, named: bool, scopes: Sequence[Scope]
) -> str:
    """The plan's exam name: the registry's name, or what the student typed for an exam the
    registry does not know (its syllabus may still have been matched to one)."""
    if exam is None:
        return request.exam_type or OWN_SYLLABUS
    base = exam.name if named or not request.exam_type else request.exam_type
    if scopes:
        return f"{base} - {', '.join(_scope_label(exam, s) for s in scopes)}"
    return base


# --- Topics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTopics:
    """The topics to plan and where they came from."""

    topics: list[SyllabusTopic]
    source: Literal["pasted", "registry"]
    excluded: list[str] = field(default_factory=list)
    """Pasted topics left out because they are outside the scope the goal names."""
    notes: list[str] = field(default_factory=list)


def _scope_topics(registry: SyllabusRegistry, scopes: Sequence[Scope]) -> list[RegistryTopic]:
    seen: dict[tuple[str, str], RegistryTopic] = {}
    for scope in scopes:
        for topic in registry.topics(scope.exam, scope.subject, scope.sub_subject):
            seen.setdefault((topic.subject, topic.name), topic)
    return list(seen.values())


def registry_syllabus(
    registry: SyllabusRegistry, registry_topics: Sequence[RegistryTopic]
) -> list[SyllabusTopic]:
    """Registry topics as scheduler input, across subjects.

    Two subjects may share a topic name (NEET has Thermodynamics in physics and in
    chemistry); the scheduler needs unique names, so a shared name is qualified with its
    subject ("Thermodynamics (Chemistry)"), prerequisites included.

    Args:
        registry: The registry (for subject names).
        registry_topics: The topics in scope, in registry order.

    Returns:
        Topics for the scheduler, prerequisites outside the scope left out.
    """
    subjects: dict[str, list[RegistryTopic]] = {}
    for topic in registry_topics:
        subjects.setdefault(f"{topic.exam}/{topic.subject}", []).append(topic)
    owners: dict[str, set[str]] = {}
    for key, topics in subjects.items():
        for topic in topics:
            owners.setdefault(normalise_topic_name(topic.name), set()).add(key)
    clashing = {name for name, keys in owners.items() if len(keys) > 1}
    result: list[SyllabusTopic] = []
    for topics in subjects.values():
        first = topics[0]
        subject_name = next(
            s.name for s in registry.exam(first.exam).subjects if s.key == first.subject
        )

        def qualified(name: str, label: str = subject_name) -> str:
            return f"{name} ({label})" if normalise_topic_name(name) in clashing else name

        result.extend(
            planned.model_copy(
                update={
                    "name": qualified(planned.name),
                    "prerequisites": tuple(qualified(p) for p in planned.prerequisites),
                }
            )
            for planned in topics_from_registry(topics)
        )
    return result


def resolve_topics(
    registry: SyllabusRegistry, routing: Routing, parsed: Sequence[ParsedTopic] | None
) -> ResolvedTopics:
    """The topics to plan: the student's pasted syllabus wins, the registry narrows and
    enriches it, and the registry's own topics are planned when nothing was pasted.

    Args:
        registry: The registry.
        routing: The cross-checked routing.
        parsed: The pasted syllabus, parsed (None when nothing was pasted).

    Returns:
        The topics.
    """
    exam = routing.exam
    if parsed is None:
        assert exam is not None  # cross_check refuses an unknown exam without a syllabus
        chosen = _scope_topics(registry, routing.scopes) if routing.scopes else list(exam.topics)
        return ResolvedTopics(registry_syllabus(registry, chosen), "registry")
    enriched = enrich_topics(parsed, exam.topics if exam else ())
    if exam is None or not routing.scopes:
        return ResolvedTopics(enriched, "pasted")
    inside, outside = narrow_to_scope(enriched, _scope_topics(registry, routing.scopes))
    if not inside:
        return ResolvedTopics(
            enriched,
            "pasted",
            notes=["none of your topics is in the scope the goal names; all of them are planned"],
        )
    return ResolvedTopics(inside, "pasted", excluded=[t.name for t in outside])


# --- The fix loop's edits ----------------------------------------------------------------

_ORDER_CUES = re.compile(
    r"\b(first|firstly|before|after|last|lastly|start(?:ing)?\s+with|begin(?:ning)?\s+with|"
    r"end(?:ing)?\s+with|finish(?:ing)?\s+with|early|earlier|later|then|on\s+day\s+\d+|"
    r"by\s+day\s+\d+|day\s+\d+)\b",
    re.IGNORECASE,
)


def wished_topics(goal: str, topics: Sequence[SyllabusTopic]) -> list[str]:
    """Planned topics the goal names, when it also asks for an order or a day.

    This is what the scheduler cannot express: it orders by prerequisites and weight, not
    by what a student prefers.

    Args:
        goal: The student's goal.
        topics: The topics planned.

    Returns:
        Topic names (as planned) the goal places; empty when it places none.
    """
    if not _ORDER_CUES.search(goal):
        return []
    phrase = _phrase(goal)
    return [
        t.name
        for t in topics
        if _mentions(phrase, (t.name,) + ((t.registry_name,) if t.registry_name else ()))
    ]


def _day_theme(day: DailyPlan) -> str:
    """A learning day's theme in the scheduler's style, for a day an edit changed."""
    learned = list(dict.fromkeys(t.name for t in day.topics if t.kind == "learn"))
    if learned:
        extra = f"; {len(learned) - 3} more" if len(learned) > 3 else ""
        return "; ".join(learned[:3]) + extra
    return "Spaced reviews" if day.topics else "Buffer day: catch up or rest"


def apply_moves(plan: StudyPlan, moves: Sequence[prompts.TopicMoveProposal]) -> StudyPlan:
    """The plan with every learning session of each moved topic put on its new day.

    A moved topic's sessions become one session of the same total hours; its spaced reviews
    on or before the new day are dropped (a review cannot come before the learning). Day
    totals and the themes of changed learning days are recomputed; nothing is checked here.

    Args:
        plan: The plan to change.
        moves: Topic and target day, in order (a later move of the same topic wins).

    Returns:
        A new plan.
    """
    new = plan.model_copy(deep=True)
    by_number = {day.day: day for day in new.schedule}
    touched: set[int] = set()
    for move in moves:
        key = normalise_topic_name(move.topic)
        target = by_number.get(move.to_day)
        if target is None:
            continue
        taken: list[Topic] = []
        for day in new.schedule:
            kept: list[Topic] = []
            for session in day.topics:
                same = normalise_topic_name(session.name) == key
                if same and session.kind == "learn":
                    taken.append(session)
                elif same and session.kind == "review" and day.day <= move.to_day:
                    pass  # a review before (or on) the day it is now learned
                else:
                    kept.append(session)
            if len(kept) != len(day.topics):
                day.topics = kept
                touched.add(day.day)
        if not taken:
            continue
        merged = taken[0].model_copy(
            update={"hours": sum(s.hours or 0.0 for s in taken), "part": 1, "parts": 1}
        )
        target.topics.insert(
            sum(1 for s in target.topics if s.kind == "learn"),
            merged,
        )
        touched.add(target.day)
    for number in touched:
        day = by_number[number]
        day.estimated_hours = sum(s.hours or 0.0 for s in day.topics)
        if day.day_type == "study":
            day.theme = _day_theme(day)
    return new


def plan_lines(
    plan: StudyPlan, hours_per_day: float, limit: int = prompts.EDIT_PLAN_DAYS
) -> list[str]:
    """``day N (h of cap): topic (h), ...`` lines, for the fix prompt.

    Args:
        plan: The plan.
        hours_per_day: The daily cap, shown with each day's load.
        limit: Most days listed.

    Returns:
        The lines.
    """
    lines: list[str] = []
    for day in plan.schedule:
        if day.day_type == "off":
            continue
        load = f"day {day.day} ({day.estimated_hours:g} of {hours_per_day:g} h)"
        learned = [f"{t.name} ({t.hours or 0:g} h)" for t in day.topics if t.kind == "learn"]
        if day.day_type == "revision":
            lines.append(f"{load}: revision")
        else:
            lines.append(f"{load}: {', '.join(learned) or 'reviews only'}")
        if len(lines) >= limit:
            lines.append("...")
            break
    return lines


# --- Words -------------------------------------------------------------------------------


def apply_prose(
    plan: StudyPlan,
    *,
    overview: str | None,
    themes: dict[int, str],
    reasons: dict[str, str],
) -> StudyPlan:
    """The plan with the model's screened words added to the scheduler's.

    The scheduler's text carries the exact facts (hours, parts, prerequisites), so the
    model's words come first and the facts stay: ``"<model's theme>: <topics>"``,
    ``"<model's reason> <weight, hours, prerequisites>"``.

    Args:
        plan: The final plan.
        overview: The model's overview, or None.
        themes: Day number -> the model's theme.
        reasons: Topic name -> the model's reason (learning sessions only).

    Returns:
        A new plan.
    """
    new = plan.model_copy(deep=True)
    if overview:
        new.overview = f"{overview} {plan.overview}"
    by_key = {normalise_topic_name(name): text for name, text in reasons.items()}
    for day in new.schedule:
        if day.day in themes:
            day.theme = f"{themes[day.day]}: {day.theme}"
        for session in day.topics:
            reason = by_key.get(normalise_topic_name(session.name))
            if reason and session.kind == "learn":
                session.rationale = f"{reason} {session.rationale}"
    return new


def _theme_listing(day: DailyPlan) -> str:
    if day.day_type == "revision":
        return "revision"
    learned = list(dict.fromkeys(t.name for t in day.topics if t.kind == "learn"))
    return "; ".join(learned) if learned else "spaced reviews"


# --- Cache key ---------------------------------------------------------------------------


def registry_digest(registry: SyllabusRegistry) -> str:
    """A hash of everything in the registry that can change a plan.

    Args:
        registry: The registry.

    Returns:
        Hex digest.
    """
    digest = hashlib.sha256()
    for exam in registry.exams:
        for subject in exam.subjects:
            for t in subject.topics:
                digest.update(
                    repr(
                        (
                            exam.key,
                            exam.name,
                            exam.aliases,
                            subject.key,
                            subject.aliases,
                            t.sub_subject,
                            t.name,
                            t.weight,
                            t.hours,
                            t.difficulty,
                            t.prerequisites,
                            t.subtopics,
                            t.aliases,
                        )
                    ).encode()
                )
    return digest.hexdigest()


def plan_cache_key(request: PlanRequest, fingerprint: str) -> str:
    """The plan cache key of a request: a hash of its normalised inputs.

    Whitespace in the syllabus and goal, blank lines, the goal's case and the exam's case
    do not change the key; anything that can change the plan does (the dates included:
    the service fills ``start_date`` with today first).

    Args:
        request: The request, ``start_date`` filled.
        fingerprint: What else decides the plan (registry, model, settings).

    Returns:
        Hex digest.
    """
    syllabus = request.syllabus_text
    body = {
        "fingerprint": fingerprint,
        "syllabus": (
            None
            if syllabus is None
            else "\n".join(" ".join(line.split()) for line in syllabus.splitlines() if line.strip())
        ),
        "exam_type": " ".join(request.exam_type.casefold().split()),
        "goal": " ".join(request.goal.casefold().split()),
        "days": request.days,
        "hours_per_day": request.hours_per_day,
        "start_date": request.start_date.isoformat() if request.start_date else None,
        "exam_date": request.exam_date.isoformat() if request.exam_date else None,
        "days_off": [d.isoformat() for d in request.days_off],
        "overflow": request.overflow,
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


# --- The workflow ------------------------------------------------------------------------


@dataclass
class PlannedStudy:
    """A verified plan with its history and how it was made."""

    history: VerifiedPlanHistory
    verification: PlanVerification
    routing: Routing
    capacity: CapacityReport
    topics: ResolvedTopics
    fix_log: list[dict[str, Any]]
    prose: dict[str, Any]

    def as_result(self) -> dict[str, Any]:
        """The request's result: the original's history shape plus ExamMentor's reports."""
        return {
            "needs_clarification": False,
            **self.history.model_dump(mode="json"),
            "verification": self.verification.model_dump(mode="json"),
            "routing": self.routing.as_dict(),
            "capacity": self.capacity.model_dump(mode="json"),
            "topic_source": self.topics.source,
            "excluded_topics": self.topics.excluded,
            "notes": [*self.routing.notes, *self.topics.notes],
            "fix_log": self.fix_log,
            "prose": self.prose,
        }


class _ModelCalls:
    """The model calls of one run: a failed endpoint is not asked again in the same run."""

    def __init__(self, llm: LLMClient | None) -> None:
        self.llm = llm
        self.down = llm is None
        self.status: dict[str, str] = {}

    async def ask(
        self,
        purpose: str,
        messages: Sequence[ChatMessage],
        schema: type[M],
        *,
        max_tokens: int,
        validate: Callable[[M], None] | None = None,
    ) -> M | None:
        if self.down or self.llm is None:
            self.status[purpose] = "off" if self.llm is None else "skipped"
            return None
        try:
            answer = await self.llm.structured(
                messages=messages,
                schema=schema,
                purpose=purpose,
                max_tokens=max_tokens,
                validate=validate,
            )
        except LLMInvalidOutput as exc:
            self.status[purpose] = "invalid"
            log.info(
                "model output unusable; the scheduler's text stays",
                purpose=purpose,
                errors=list(exc.errors),
            )
            return None
        except LLMError as exc:
            self.status[purpose] = "unavailable"
            self.down = True
            log.warning(
                "model unavailable; planning without it", purpose=purpose, reason=exc.reason
            )
            return None
        self.status[purpose] = "ok"
        return answer


class PlanWorkflow:
    """Routes, schedules, verifies, fixes and explains one plan request.

    Holds no per-request state; one instance serves every command of a worker. Neither the
    database nor Kafka is touched here, so the benchmark and the unit tests run it as is.
    """

    def __init__(
        self, registry: SyllabusRegistry, llm: LLMClient | None, settings: PlannerSettings
    ) -> None:
        """Builds the workflow.

        Args:
            registry: The syllabus registry.
            llm: The model client; None plans without any model call.
            settings: The planner's settings.
        """
        self.registry = registry
        self.llm = llm if settings.llm_enabled else None
        self.settings = settings
        self.choices = prompts.RouterChoices.from_registry(registry)
        self.router_schema = prompts.router_schema(self.choices)
        model = self.llm.settings.model if self.llm is not None else "none"
        self.fingerprint = hashlib.sha256(
            json.dumps(
                [
                    PIPELINE_VERSION,
                    registry_digest(registry),
                    model,
                    settings.max_fix_rounds,
                    settings.prose_max_days,
                    settings.prose_max_topics,
                ]
            ).encode()
        ).hexdigest()

    @staticmethod
    def with_start_date(request: PlanRequest, today: dt.date | None = None) -> PlanRequest:
        """The request with ``start_date`` filled (today, UTC, when it was left out).

        Args:
            request: The request.
            today: The date to use; today in UTC when None.

        Returns:
            The request, unchanged when it had a start date.
        """
        if request.start_date is not None:
            return request
        return request.model_copy(update={"start_date": today or dt.datetime.now(dt.UTC).date()})

    def read_syllabus(self, request: PlanRequest) -> list[ParsedTopic] | None:
        """The pasted syllabus, parsed; checks what can be checked before any model call.

        Args:
            request: The request.

        Returns:
            The parsed topics, or None when nothing was pasted.

        Raises:
            EmptySyllabusError: The pasted text holds no topic.
            UnknownScopeError: Nothing pasted and the registry does not know the exam.
        """
        if request.syllabus_text is None:
            self.registry.exam(request.exam_type)  # raises for an exam it does not know
            return None
        parsed = parse_syllabus(
            request.syllabus_text,
            known_topics=self.registry.vocabulary(),
            section_names=self.registry.section_names(),
        )
        if not parsed:
            raise EmptySyllabusError("syllabus_text holds no topic names")
        return parsed

    async def route(
        self, request: PlanRequest, parsed: Sequence[ParsedTopic] | None, calls: _ModelCalls
    ) -> Routing | Clarification:
        """Asks the model for intent, exam and scope and cross-checks the answer.

        Args:
            request: The request.
            parsed: The pasted syllabus, parsed.
            calls: The run's model calls.

        Returns:
            See :func:`cross_check`.
        """
        answer = await calls.ask(
            "plan.route",
            prompts.router_messages(
                request.goal, request.exam_type, syllabus_pasted=parsed is not None
            ),
            self.router_schema,
            max_tokens=prompts.ROUTER_MAX_TOKENS,
            validate=self.choices.check,
        )
        return cross_check(
            self.registry,
            request,
            parsed,
            answer.to_decision() if answer is not None else None,
            calls.status.get("plan.route", "off"),
        )

    async def run(
        self, request: PlanRequest, progress: ProgressSink = _no_progress
    ) -> PlannedStudy | Clarification:
        """One plan request, from the goal to the explained, verified plan.

        Args:
            request: The request (``start_date`` filled; see :meth:`with_start_date`).
            progress: Receives ``status``, ``draft`` and ``verification`` events.

        Returns:
            The plan and its history, or a clarifying question.

        Raises:
            PlanningError: Bad input: an empty syllabus, a syllabus that does not fit, no
                study day left.
            UnknownScopeError: An exam the registry does not know and no syllabus.
        """
        parsed = self.read_syllabus(request)
        calls = _ModelCalls(self.llm)
        await progress(_status("routing", "Reading your goal"))
        routing = await self.route(request, parsed, calls)
        if isinstance(routing, Clarification):
            return routing
        resolved = resolve_topics(self.registry, routing, parsed)
        await progress(
            _status(
                "scheduling",
                f"Scheduling {len(resolved.topics)} topics over {request.days} days",
                routing=routing.as_dict(),
            )
        )
        scheduled = schedule_plan(
            resolved.topics,
            days=request.days,
            hours_per_day=request.hours_per_day,
            start_date=request.start_date,
            exam_date=request.exam_date,
            days_off=request.days_off,
            overflow=request.overflow,
            exam_name=routing.exam_name,
        )
        required = scheduled.topics
        first = PlanVersion(
            version=1,
            plan=scheduled.plan,
            verification=verify_plan(scheduled.plan, required, hours_per_day=request.hours_per_day),
            was_accepted=False,
        )
        versions = [first]
        await _report(progress, first)
        fix_log = await self._fix_loop(request, required, versions, calls, progress)

        final = _choose_final(versions)
        await progress(_status("explaining", "Writing the overview and the reasons"))
        explained, prose = await self._explain(final.plan, required, calls)
        versions = [
            v.model_copy(update={"was_accepted": True, "plan": explained})
            if v.version == final.version
            else v
            for v in versions
        ]
        history = VerifiedPlanHistory(
            final_plan=explained,
            versions=versions,
            total_iterations=len(versions),
            self_correction_applied=final.version > 1,
            verification_summary=VerificationSummary.from_verification(
                final.verification, len(versions)
            ),
        )
        prose["calls"] = dict(calls.status)
        return PlannedStudy(
            history=history,
            verification=final.verification,
            routing=routing,
            capacity=scheduled.capacity,
            topics=resolved,
            fix_log=fix_log,
            prose=prose,
        )

    async def _fix_loop(
        self,
        request: PlanRequest,
        required: Sequence[SyllabusTopic],
        versions: list[PlanVersion],
        calls: _ModelCalls,
        progress: ProgressSink,
    ) -> list[dict[str, Any]]:
        """Model-proposed changes for what the scheduler cannot express, checked exactly."""
        wished = wished_topics(request.goal, required)
        log_: list[dict[str, Any]] = []
        if not wished or self.settings.max_fix_rounds == 0 or calls.down:
            return log_
        critique = ""
        current = versions[-1]
        original = _learning_days(current.plan)
        for round_no in range(1, self.settings.max_fix_rounds + 1):
            await progress(
                _status(
                    "fixing",
                    f"Fitting the plan to your wish (round {round_no})",
                    round=round_no,
                    wish_topics=wished,
                )
            )
            plan = current.plan
            study_days = [d.day for d in plan.schedule if d.day_type == "study"]
            # The wished topics first: a weak model tends to pick the first choice.
            movable = list(dict.fromkeys([*wished, *(t.name for t in required)]))
            schema = prompts.plan_edit_schema(movable, study_days)

            check = functools.partial(
                self._check_edit,
                plan=plan,
                original=original,
                wished=wished,
                movable=movable,
                study_days=study_days,
            )
            edit = await calls.ask(
                "plan.fix",
                prompts.edit_messages(
                    request.goal, plan_lines(plan, request.hours_per_day), critique
                ),
                schema,
                max_tokens=prompts.EDIT_MAX_TOKENS,
                validate=check,
            )
            if edit is None:
                log_.append({"round": round_no, "outcome": calls.status.get("plan.fix", "none")})
                break
            moves = [{"topic": m.topic, "to_day": m.to_day} for m in edit.moves]
            changed = apply_moves(plan, edit.moves)
            diff = diff_plans(plan, changed)
            if diff.is_empty:
                log_.append({"round": round_no, "moves": moves, "outcome": "no change"})
                break
            verification = verify_plan(changed, required, hours_per_day=request.hours_per_day)
            current = PlanVersion(
                version=len(versions) + 1,
                plan=changed,
                verification=verification,
                was_accepted=False,
                diff=diff,
            )
            versions.append(current)
            await _report(progress, current)
            log_.append(
                {
                    "round": round_no,
                    "moves": moves,
                    "version": current.version,
                    "outcome": "passed" if verification.is_valid else "failed",
                    "critique": "" if verification.is_valid else verification.critique,
                }
            )
            if verification.is_valid:
                break
            critique = verification.critique
        return log_

    @staticmethod
    def _check_edit(
        answer: prompts.PlanEditAnswer,
        *,
        plan: StudyPlan,
        original: dict[str, list[int]],
        wished: Sequence[str],
        movable: Sequence[str],
        study_days: Sequence[int],
    ) -> None:
        """An edit must name real topics and days and leave a wished topic somewhere new
        (compared with the scheduler's plan, so a later round may fix what an earlier broke).
        """
        prompts.check_edit(answer, movable=movable, study_days=study_days)
        after = _learning_days(apply_moves(plan, answer.moves))
        if all(after.get(k) == original.get(k) for k in map(normalise_topic_name, wished)):
            raise ValueError(prompts.wish_not_met(wished))

    async def _explain(
        self, plan: StudyPlan, required: Sequence[SyllabusTopic], calls: _ModelCalls
    ) -> tuple[StudyPlan, dict[str, Any]]:
        """The plan with the model's words where they pass the screen."""
        learn_hours = sum(
            t.hours or 0.0 for d in plan.schedule for t in d.topics if t.kind == "learn"
        )
        facts = prompts.PlanFacts(
            exam_name=plan.exam_name,
            days=plan.total_days,
            topics=len(required),
            learn_hours=learn_hours,
            revision_days=sum(1 for d in plan.schedule if d.day_type == "revision"),
            critical=tuple(plan.critical_topics),
        )
        overview_answer = await calls.ask(
            "plan.overview",
            prompts.overview_messages(facts),
            prompts.OverviewAnswer,
            max_tokens=prompts.OVERVIEW_MAX_TOKENS,
            validate=lambda answer: _discard(prompts.screen_overview(answer, facts)),
        )
        overview = prompts.screen_overview(overview_answer, facts) if overview_answer else None

        days = [d for d in plan.schedule if d.day_type != "off"][: self.settings.prose_max_days]
        listings = [_theme_listing(d) for d in days]
        themes: dict[int, str] = {}
        if days:
            themes_answer = await calls.ask(
                "plan.themes",
                prompts.theme_messages(listings),
                prompts.themes_schema(len(days)),
                max_tokens=prompts.token_budget(prompts.THEME_TOKENS_PER_DAY, len(days)),
                validate=lambda answer: _discard(prompts.screen_themes(answer, listings)),
            )
            if themes_answer is not None:
                screened = prompts.screen_themes(themes_answer, listings)
                themes = {days[i - 1].day: text for i, text in screened.items()}

        critical = {normalise_topic_name(n) for n in plan.critical_topics}
        ordered = sorted(required, key=lambda t: normalise_topic_name(t.name) not in critical)
        names = [t.name for t in ordered[: self.settings.prose_max_topics]]
        reasons: dict[str, str] = {}
        if names:
            reasons_answer = await calls.ask(
                "plan.rationale",
                prompts.rationale_messages(plan.exam_name, names),
                prompts.rationale_schema(len(names)),
                max_tokens=prompts.token_budget(prompts.RATIONALE_TOKENS_PER_TOPIC, len(names)),
                validate=lambda answer: _discard(prompts.screen_rationales(answer, names)),
            )
            if reasons_answer is not None:
                reasons = prompts.screen_rationales(reasons_answer, names)

        explained = apply_prose(plan, overview=overview, themes=themes, reasons=reasons)
        report = {
            "overview": "model" if overview else "scheduler",
            "themes_from_model": len(themes),
            "themes_asked": len(days),
            "reasons_from_model": len(reasons),
            "reasons_asked": len(names),
        }
        return explained, report


def _discard(_: object) -> None:
    """Runs a screen for its exception only (the client's ``validate`` returns nothing)."""


def _status(stage: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "status", "stage": stage, "message": message, **extra}


async def _report(progress: ProgressSink, version: PlanVersion) -> None:
    await progress(
        {"type": "draft", "version": version.version, "plan": version.plan.model_dump(mode="json")}
    )
    await progress(
        {
            "type": "verification",
            "version": version.version,
            "result": version.verification.model_dump(mode="json"),
        }
    )


def _learning_days(plan: StudyPlan) -> dict[str, list[int]]:
    days: dict[str, list[int]] = {}
    for day in plan.schedule:
        for t in day.topics:
            if t.kind == "learn":
                days.setdefault(normalise_topic_name(t.name), []).append(day.day)
    return days


def _choose_final(versions: Sequence[PlanVersion]) -> PlanVersion:
    """The last version that passed the check (the last one if none did)."""
    passed = [v for v in versions if v.verification.is_valid]
    return passed[-1] if passed else versions[-1]


# --- The command -------------------------------------------------------------------------


def rejection(error: PlanningError | UnknownScopeError, request: PlanRequest) -> CommandRejected:
    """A domain refusal as the command's final error, naming the field and the numbers.

    Args:
        error: What the domain refused.
        request: The request.

    Returns:
        The rejection (the gateway answers 422, or 413 for ``syllabus_too_large``).
    """
    if isinstance(error, UnknownScopeError):
        return CommandRejected(
            "unknown_exam",
            f"exam_type: {request.exam_type!r} is not an exam the planner knows "
            f"({', '.join(error.known)}); paste a syllabus_text or choose a known exam",
            {"field": "exam_type", "known_exams": error.known},
        )
    if isinstance(error, CapacityError):
        return CommandRejected(
            "capacity_exceeded",
            f"days: {error}",
            {
                "field": "days",
                "needed_hours": error.needed_hours,
                "available_hours": error.available_hours,
                "revision_reserve_hours": error.revision_reserve_hours,
                "study_days": error.study_days,
                "hours_per_day": error.hours_per_day,
                "min_days_needed": error.min_days_needed,
            },
        )
    if isinstance(error, EmptySyllabusError):
        return CommandRejected(
            "syllabus_empty", f"syllabus_text: {error}", {"field": "syllabus_text"}
        )
    if isinstance(error, NoStudyDaysError):
        field_name = "exam_date" if request.exam_date is not None else "days_off"
        return CommandRejected("no_study_days", f"{field_name}: {error}", {"field": field_name})
    return CommandRejected("planning_failed", str(error))


def _events(ctx: CommandContext, plan_id: UUID, body: dict[str, Any]) -> list[Any]:
    plan = StudyPlan.model_validate(body["final_plan"])
    verification = PlanVerification.model_validate(body["verification"])
    summary = VerificationSummary.model_validate(body["verification_summary"])
    from_cache = bool(body.get("from_cache"))
    return [
        ctx.event(
            "plan.generated",
            1,
            {
                "plan_id": str(plan_id),
                "exam_name": plan.exam_name,
                "total_days": plan.total_days,
                "start_date": plan.schedule[0].date.isoformat()
                if plan.schedule and plan.schedule[0].date
                else None,
                "topics_count": verification.required_topics_count,
                "dropped_topics_count": len(plan.dropped_topics),
                "critical_topics": plan.critical_topics,
                "from_cache": from_cache,
            },
        ),
        ctx.event(
            "plan.verified",
            1,
            {
                "plan_id": str(plan_id),
                "is_valid": verification.is_valid,
                "coverage_percent": verification.coverage_percent,
                "required_topics_count": verification.required_topics_count,
                "scheduled_topics_count": verification.scheduled_topics_count,
                "missing_topics_count": len(verification.missing_topics),
                "overloaded_days_count": summary.overloaded_days_count,
                "prerequisite_issues_count": summary.prerequisite_issues_count,
                "revision_present": verification.revision_present,
                "iterations_used": summary.iterations_used,
                "self_correction_applied": bool(body.get("self_correction_applied")),
                "from_cache": from_cache,
            },
        ),
    ]


async def generate_plan(
    ctx: CommandContext,
    request: PlanRequest,
    workflow: PlanWorkflow,
    settings: PlannerSettings,
) -> Outcome:
    """``plan.generate`` v1: a verified plan with its history, from the cache when it can.

    Args:
        ctx: The command's context.
        request: The plan request.
        workflow: The planner's workflow.
        settings: The planner's settings.

    Returns:
        The result, the plan's row (and cache entry) to write, and the two events.

    Raises:
        CommandRejected: Bad input the domain refused, or an unknown study session.
    """
    request = workflow.with_start_date(request)
    key = plan_cache_key(request, workflow.fingerprint)
    session_id = ctx.envelope.session_id
    async with ctx.transaction() as conn:
        if session_id is not None and not await repo.session_exists(conn, session_id):
            raise CommandRejected("session_not_found", f"session_id: no study session {session_id}")
        cached = await repo.cached_result(conn, key) if settings.plan_cache_ttl_s > 0 else None
    if cached is not None:
        await ctx.progress(_status("cache", "Answered from the plan cache", from_cache=True))
        body = {**cached, "from_cache": True}
    else:
        try:
            planned = await workflow.run(request, ctx.progress)
        except (PlanningError, UnknownScopeError) as exc:
            raise rejection(exc, request) from exc
        if isinstance(planned, Clarification):
            return Outcome(result=planned.as_result())
        body = planned.as_result()

    plan_id = uuid4()
    result = {"plan_id": str(plan_id), **body}
    store_in_cache = cached is None and settings.plan_cache_ttl_s > 0

    async def persist(conn: Connection) -> None:
        await repo.insert_study_plan(
            conn,
            plan_id=plan_id,
            user_id=ctx.user_id,
            session_id=session_id,
            request_id=ctx.envelope.request_id,
            plan=body["final_plan"],
            verification=body["verification"],
            history={k: v for k, v in body.items() if k not in ("final_plan", "verification")},
            from_cache=bool(body["from_cache"]),
        )
        if store_in_cache:
            await repo.store_cached_result(conn, key, body, settings.plan_cache_ttl_s)

    return Outcome(result=result, persist=persist, events=_events(ctx, plan_id, body))


def build_router(resources: WorkerResources) -> CommandRouter:
    """The planner's commands.

    Args:
        resources: The worker's settings, pool, broker and model client.

    Returns:
        The router with ``plan.generate`` v1.
    """
    settings = planner_settings(resources.settings)
    registry = load_registry([settings.extra_syllabi_dir] if settings.extra_syllabi_dir else [])
    workflow = PlanWorkflow(registry, resources.llm, settings)
    router = CommandRouter("planner")

    @router.command(PLAN_GENERATE.name, PLAN_GENERATE.version, PlanRequest)
    async def _generate(ctx: CommandContext, request: PlanRequest) -> Outcome:
        return await generate_plan(ctx, request, workflow, settings)

    return router
