"""Routing: what a plan request is about, decided from the request, the goal's words and the
router model's reading, cross-checked against the registry.

A scope is accepted only when the registry knows it *and* the student's own words support
it. A goal that names what the registry cannot place (NEET mathematics, an exam other than
the one chosen) gets a :class:`Clarification` instead of a guessed plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from exammentor.contracts.plan import PlanRequest, RouterDecision, RouterScope
from services.planner.domain.errors import UnknownScopeError
from services.planner.domain.names import mentions, normalise_topic_name, padded_phrase
from services.planner.domain.registry import ExamSyllabus, Scope, SyllabusRegistry
from services.planner.domain.syllabus import ParsedTopic

OWN_SYLLABUS = "Own syllabus"
"""The exam name of a plan whose syllabus matches no exam of the registry."""


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
    phrase = padded_phrase(goal)
    return [e for e in registry.exams if mentions(phrase, (e.key, e.name, *e.aliases))]


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
    phrase = padded_phrase(goal)
    scopes: list[Scope] = []
    for subject in exam.subjects:
        subject_named = mentions(phrase, (subject.key, subject.name, *subject.aliases))
        parts = [
            part
            for part in subject.sub_subjects
            if mentions(phrase, (part.name, *part.aliases))
            or (subject_named and mentions(phrase, (part.key,)))
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
    phrase = padded_phrase(goal)
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
                named = [n for n in names if mentions(phrase, (n,))]
                if (
                    named
                    and all(normalise_topic_name(n) not in own for n in named)
                    and label not in found
                ):
                    found.append(label)
    # "Organic Chemistry" mentioned means "Chemistry" is too: report the longer name only.
    return [
        f for f in found if not any(f != g and padded_phrase(f) in padded_phrase(g) for g in found)
    ]


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
        borrowed_from: The registry exam whose figures topics of an exam the registry does
            not know may borrow, topic by topic, where a topic itself matches one of its own.
    """

    exam: ExamSyllabus | None
    exam_name: str
    scopes: tuple[Scope, ...]
    decision: RouterDecision
    model_decision: RouterDecision | None
    model_status: str
    notes: tuple[str, ...] = ()
    borrowed_from: ExamSyllabus | None = None

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
            "borrowed_from": self.borrowed_from.key if self.borrowed_from else None,
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
    phrase = padded_phrase(goal)
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
    syllabus with no exam named is matched to the registry exam it overlaps most. A pasted
    syllabus of an exam the registry does not know (``exam_type`` GRE) is planned as the
    student's own: it is not matched to another exam, and only its topics that match that
    exam's by name borrow their figures (:attr:`Routing.borrowed_from`).

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
    borrowed: ExamSyllabus | None = None
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
        if exam is not None and request.exam_type:
            # Another exam's scope and weights would misplan this one: its topics lend their
            # figures one by one, where the student's topic is one of theirs by name.
            borrowed, exam = exam, None
            notes.append(
                f"{request.exam_type} is not in the registry: your syllabus is planned as "
                f"pasted; topics that match {borrowed.name}'s by name borrow their hours, "
                "difficulty and prerequisites (each one is named in the notes)"
            )
        elif exam is not None:
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
    return Routing(
        exam, exam_name, tuple(scopes), decision, model, model_status, tuple(notes), borrowed
    )


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
