"""Plans, learner states, a scripted driver and runs brought to a given point, shared by the
autopilot's unit tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from exammentor.contracts.autopilot import AutopilotStartRequest
from exammentor.contracts.plan import StudyPlan
from services.autopilot.domain import (
    AnswerDiagnosed,
    AnswerGiven,
    AnswerTimedOut,
    Applied,
    AutopilotRun,
    AwaitAnswer,
    DiagnoseAnswer,
    DriverAction,
    DriverOutcome,
    FinishRun,
    GenerateQuiz,
    Idle,
    LearnerRead,
    LessonSkipped,
    LessonTaught,
    MasteryUpdated,
    QuizGenerated,
    QuizQuestion,
    QuizSkipped,
    ReadLearner,
    RunFinished,
    TeachLesson,
    UpdateMastery,
    apply,
    next_action,
    start_run,
)

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SESSION = uuid.UUID("00000000-0000-4000-8000-000000000001")

TOPICS = ("Kinematics", "Laws of Motion", "Gravitation")
"""The plan of the machine's tests that need no other."""

TOPIC_NAMES = (
    "Kinematics",
    "Laws of Motion",
    "Work, Energy and Power",
    "Rotational Motion",
    "Gravitation",
    "Thermodynamics",
    "Oscillations & Waves",
    "Electrostatics",
    "Current Electricity",
    "Optics",
    "Newton's Rings",
    "Mole Concept",
)


def make_plan(*names: str, critical: tuple[str, ...] = (), per_day: int = 2) -> StudyPlan:
    """A plan whose days hold ``names`` in order, ``per_day`` sessions a day."""
    days = [
        {
            "day": number + 1,
            "theme": "study",
            "estimated_hours": 1.0,
            "topics": [
                {"name": name, "difficulty": "medium", "rationale": ""}
                for name in names[start : start + per_day]
            ],
        }
        for number, start in enumerate(range(0, len(names), per_day))
    ]
    return StudyPlan.model_validate(
        {
            "exam_name": "Test exam",
            "total_days": len(days),
            "overview": "",
            "schedule": days,
            "critical_topics": list(critical),
        }
    )


def make_request(*names: str, **fields: object) -> AutopilotStartRequest:
    """A start request over a plan of ``names``."""
    return AutopilotStartRequest.model_validate({"study_plan": make_plan(*names), **fields})


def questions(topic: str, action_id: int, count: int = 3) -> list[QuizQuestion]:
    """Four-option questions whose answer is option 1."""
    return [
        QuizQuestion(
            id=f"{topic}-{action_id}-q{i}",
            text=f"Question {i} on {topic}",
            options=["A", "B", "C", "D"],
            correct_option_index=1,
            explanation="because B",
            concept_tested=topic,
        )
        for i in range(1, count + 1)
    ]


@st.composite
def plans(draw: st.DrawFn, max_topics: int = 8) -> StudyPlan:
    """Plans of distinct topics in random order, a topic sometimes repeated on a later day
    (a review), with random critical topics."""
    count = draw(st.integers(1, max_topics))
    names = list(draw(st.permutations(TOPIC_NAMES))[:count])
    sessions = names + draw(st.lists(st.sampled_from(names), max_size=3))
    critical = draw(st.lists(st.sampled_from(names), max_size=min(5, count), unique=True))
    return make_plan(*sessions, critical=tuple(critical), per_day=draw(st.integers(1, 4)))


masteries = st.floats(0, 1, allow_nan=False)


@st.composite
def learner_states(
    draw: st.DrawFn, names: list[str]
) -> tuple[dict[str, float], dict[str, dt.datetime]]:
    """Mastery of some topics (others are at the prior) and review due dates around NOW."""
    known = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    mastery = {name: draw(masteries | st.sampled_from([0.0, 0.6, 0.85, 1.0])) for name in known}
    reviewed = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    due = {
        name: NOW + dt.timedelta(hours=draw(st.sampled_from([-1, 1])) * draw(st.integers(1, 96)))
        for name in reviewed
    }
    return mastery, due


@st.composite
def prerequisite_pairs(draw: st.DrawFn, names: list[str]) -> list[tuple[str, str]] | None:
    """``None`` (plan order) or acyclic pairs: each points from an earlier to a later topic of
    a random order."""
    if draw(st.booleans()):
        return None
    order = draw(st.permutations(names))
    pairs: list[tuple[str, str]] = []
    for i, name in enumerate(order):
        if i:
            pairs += [(before, name) for before in draw(st.lists(st.sampled_from(order[:i])))]
    return pairs


@dataclass
class ScriptedDriver:
    """Does what :func:`next_action` says with scripted results, like the service would.

    Every quiz question's answer is option 1; ``answers`` lists what the student picks per
    question in turn (``None``: let the wait time out; option 1 when the list runs out).
    Mastery rises by 0.1 per correct answer; a lesson takes 30 s, a quiz 2.5 s.
    """

    mastery: dict[str, float] = field(default_factory=dict)
    answers: list[int | None] = field(default_factory=list)
    applied: list[DriverOutcome] = field(default_factory=list)
    no_quiz: set[str] = field(default_factory=set)
    """Topics whose quiz cannot be made (the quiz service answers quiz_unavailable)."""
    no_lesson: set[str] = field(default_factory=set)
    """Topics whose lessons the tutor cannot write (it answers answer_unusable)."""

    def outcome(self, run: AutopilotRun, action: DriverAction) -> DriverOutcome | None:
        """The scripted result of ``action``; ``None`` for an answer wait."""
        match action:
            case ReadLearner():
                return LearnerRead(action_id=action.action_id, mastery=dict(self.mastery))
            case TeachLesson() if action.topic in self.no_lesson:
                return LessonSkipped(
                    action_id=action.action_id, reason="every round looped", duration_ms=9000
                )
            case TeachLesson():
                return LessonTaught(
                    action_id=action.action_id,
                    content=f"Lesson {action.lesson_number} on {action.topic}",
                    duration_ms=30_000,
                )
            case GenerateQuiz() if action.topic in self.no_quiz:
                return QuizSkipped(
                    action_id=action.action_id,
                    reason="no valid question from the model and no source text",
                    duration_ms=2500,
                )
            case GenerateQuiz():
                return QuizGenerated(
                    action_id=action.action_id,
                    questions=questions(action.topic, action.action_id, action.question_count),
                    duration_ms=2500,
                )
            case DiagnoseAnswer():
                return AnswerDiagnosed(
                    action_id=action.action_id,
                    question_id=action.question.id,
                    misconception=f"confuses option {action.answer_index} with option 1",
                )
            case UpdateMastery():
                correct = sum(a.result == "correct" for a in action.answers)
                before = run.mastery_of(action.topic).score
                score = min(1.0, before + 0.1 * correct)
                self.mastery[action.topic] = score
                return MasteryUpdated(action_id=action.action_id, topic=action.topic, score=score)
            case FinishRun():
                return RunFinished(action_id=action.action_id)
            case AwaitAnswer():
                return None

    def step(self, run: AutopilotRun, now: dt.datetime) -> tuple[Applied | None, dt.datetime]:
        """Do the next action at ``now``; an answer wait is answered two seconds in (or at
        once when less is left) or left to time out.

        Returns:
            What was applied (``None`` when idle or when only time passed) and the time after.
        """
        action = next_action(run, now)
        if isinstance(action, Idle):
            return None, now
        result = self.outcome(run, action)
        if result is not None:
            # The call takes its duration: the outcome is applied when it returns.
            now += dt.timedelta(milliseconds=result.duration_ms)
            self.applied.append(result)
            return apply(run, result, now), now
        assert isinstance(action, AwaitAnswer)
        choice = self.answers.pop(0) if self.answers else 1
        if choice is None:
            if action.until < action.answer_deadline:
                return None, action.until  # the session's time runs out first
            timed_out = AnswerTimedOut(action_id=action.action_id, question_id=action.question.id)
            self.applied.append(timed_out)
            return apply(run, timed_out, action.until), action.until
        later = min(now + dt.timedelta(seconds=2), action.until - dt.timedelta(milliseconds=1))
        later = max(now, later)
        given = AnswerGiven(question_id=action.question.id, answer_index=choice)
        return apply(run, given, later), later

    def until(
        self,
        run: AutopilotRun,
        now: dt.datetime,
        done: Callable[[AutopilotRun, dt.datetime], bool],
        *,
        pause: dt.timedelta = dt.timedelta(0),
    ) -> tuple[AutopilotRun, dt.datetime]:
        """Step, ``pause`` after each step, until ``done(run, now)``; every step must apply
        an outcome. Returns the run and the time."""
        while not done(run, now):
            applied, now = self.step(run, now + pause)
            assert applied is not None
            run = applied.run
        return run, now

    def run_to_end(
        self, run: AutopilotRun, now: dt.datetime, limit: int = 2000
    ) -> tuple[AutopilotRun, dt.datetime]:
        """Step until the run is idle; return it and the time."""
        for _ in range(limit):
            applied, now = self.step(run, now)
            if applied is None and isinstance(next_action(run, now), Idle):
                return run, now
            if applied is not None:
                run = applied.run
        raise AssertionError("the run did not end")


def started(*names: str, **fields: object) -> AutopilotRun:
    """A run started at NOW over a plan of ``names``."""
    return start_run(make_request(*names, **fields), session_id=SESSION, now=NOW)


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def awaits_answer(run: AutopilotRun, now: dt.datetime) -> bool:
    """Whether the run waits for the student's answer at ``now``."""
    return isinstance(next_action(run, now), AwaitAnswer)


def at_first_question(**fields: object) -> tuple[AutopilotRun, dt.datetime]:
    """A run over TOPICS waiting for the first quiz answer (a second between steps), and the
    time."""
    return ScriptedDriver().until(started(*TOPICS, **fields), NOW, awaits_answer, pause=seconds(1))


def waiting(run: AutopilotRun, now: dt.datetime) -> AwaitAnswer:
    """The answer wait the run is at."""
    action = next_action(run, now)
    assert isinstance(action, AwaitAnswer)
    return action
