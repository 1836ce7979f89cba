"""The state of one autopilot run: a JSON value that is the whole truth about the run.

It is stored after every change and read back by whichever replica carries the run on, so
it holds no clock and no handle: times are instants the driver passed in, and study time is
kept as milliseconds of running time (``elapsed_before_ms`` plus, while running, the time
since ``running_since``). Timers count study time, so a pause freezes them: the answer wait
started at ``wait_started_ms`` of study time and ends ``answer_timeout_seconds`` later, or,
once an answer arrived in time and is being graded (``pending_answer``), at its arrival plus
``grading_timeout_seconds``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from exammentor.contracts.autopilot import (
    FINISHED_STATUSES,
    AutopilotPhase,
    AutopilotStatus,
    AutopilotStep,
    Difficulty,
    QuestionView,
    TopicMastery,
)
from services.autopilot.domain.policy import AutopilotPolicy
from services.autopilot.domain.topics import PlanTopic

AnswerResult = Literal["correct", "wrong", "skipped"]


class QuizQuestion(BaseModel):
    """A quiz question with its answer, as the quiz service returns it; kept in the run and
    shown only as a :class:`QuestionView`."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    text: str
    question_type: str = "multiple_choice"
    options: list[str] = Field(min_length=2)
    correct_option_index: int | None = Field(default=None, ge=0)
    """``None`` when the quiz service keeps the answer: it grades the answer by the question's
    id, and the driver passes its verdict in :class:`~services.autopilot.domain.AnswerGiven`."""
    explanation: str = ""
    difficulty: Difficulty = "medium"
    concept_tested: str = ""
    source: Literal["model", "extract"] = "model"
    """Who wrote it: the model, or code from a sentence of the lesson."""
    page: int | None = None

    @model_validator(mode="after")
    def _index_in_range(self) -> QuizQuestion:
        if self.correct_option_index is not None and self.correct_option_index >= len(self.options):
            raise ValueError(
                f"correct_option_index {self.correct_option_index} is out of range for "
                f"{len(self.options)} options"
            )
        return self

    def view(self) -> QuestionView:
        """The question without its answer or explanation."""
        return QuestionView(
            id=self.id,
            text=self.text,
            question_type=self.question_type,
            options=list(self.options),
            difficulty=self.difficulty,
            concept_tested=self.concept_tested,
            source=self.source,
            page=self.page,
        )


class GradedAnswer(BaseModel):
    """What became of one question of the current quiz."""

    model_config = ConfigDict(frozen=True)

    question_id: str
    answer_index: int | None
    """The option chosen; ``None`` when the wait timed out."""
    result: AnswerResult
    waited_ms: int = Field(ge=0)
    """Study time from the question's wait starting to the answer or the timeout."""


class PendingAnswer(BaseModel):
    """An answer to the waiting question that arrived within its window and waits for its
    grade (the quiz's ``quiz.grade``): the answer window no longer ends the wait."""

    model_config = ConfigDict(frozen=True)

    question_id: str
    answer_index: int = Field(ge=0)
    received_ms: int = Field(ge=0)
    """Study time at which the answer arrived."""


class AutopilotRun(BaseModel):
    """One run of a session's autopilot."""

    session_id: UUID
    run_number: int = Field(ge=1)
    exam_type: str
    exam_date: dt.date | None
    target_duration_minutes: int = Field(ge=1)
    policy: AutopilotPolicy
    topics: list[PlanTopic] = Field(min_length=1)
    """The topics the run may study, in plan order."""
    prerequisites: list[tuple[str, str]] | None
    """``(prerequisite, topic)`` pairs; ``None``: the plan's order is the prerequisite order."""

    status: AutopilotStatus
    phase: AutopilotPhase
    started_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    end_reason: str | None = None
    elapsed_before_ms: int = Field(default=0, ge=0)
    """Study time before the current running stretch."""
    running_since: AwareDatetime | None
    """Start of the current running stretch; ``None`` unless running."""
    actions_resolved: int = Field(default=0, ge=0)
    """Driver actions whose outcome is recorded; the next action's id is one more."""

    current_topic: str | None = None
    lessons: list[str] = Field(default_factory=list)
    """Lesson texts of the current topic, in order."""
    lessons_skipped: int = Field(default=0, ge=0)
    """Lessons of the current topic the tutor could not write (each still takes its turn)."""
    quiz: list[QuizQuestion] = Field(default_factory=list)
    answers: list[GradedAnswer] = Field(default_factory=list)
    """One per question of ``quiz`` answered or skipped so far, in order."""
    wait_started_ms: int | None = None
    """Study time at which the waiting question's wait began."""
    pending_answer: PendingAnswer | None = None
    """The waiting question's answer, received and being graded; cleared when the question
    is settled (graded, or skipped when no grade came in time). Kept when the run ends, so a
    grade that arrives after a stop is recognised and left out quietly."""
    diagnosed: int = Field(default=0, ge=0)
    """Wrong answers of the current quiz diagnosed so far, in answer order."""

    mastery: list[TopicMastery]
    """One per topic, in plan order."""
    reviews_due: dict[str, AwareDatetime] = Field(default_factory=dict)
    """Topic -> FSRS due date, as last read from the learner model."""
    topics_completed: list[str] = Field(default_factory=list)
    """Topics taken through a whole loop (lessons, quiz, update) in this run, once each."""
    topics_skipped: list[str] = Field(default_factory=list)
    """Topics whose quiz could not be made in this run; not chosen again in it."""
    steps: list[AutopilotStep] = Field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        """Whether the run is stopped, completed or failed."""
        return self.status in FINISHED_STATUSES

    @property
    def next_action_id(self) -> int:
        """The id of the driver action the run waits for."""
        return self.actions_resolved + 1

    def elapsed_ms(self, now: dt.datetime) -> int:
        """Study time at ``now``: running time only, pauses excluded."""
        if self.running_since is None:
            return self.elapsed_before_ms
        return self.elapsed_before_ms + max(0, _ms(now - self.running_since))

    @property
    def target_ms(self) -> int:
        """The study time the run aims at."""
        return self.target_duration_minutes * 60_000

    def time_up(self, now: dt.datetime) -> bool:
        """Whether the run has had its study time."""
        return self.elapsed_ms(now) >= self.target_ms

    def wall_time_at(self, study_ms: int) -> dt.datetime | None:
        """When study time reaches ``study_ms`` if the run keeps running; ``None`` unless
        running."""
        if self.running_since is None:
            return None
        return self.running_since + dt.timedelta(milliseconds=study_ms - self.elapsed_before_ms)

    @property
    def waiting_question(self) -> QuizQuestion | None:
        """The question whose answer the run waits for, if any."""
        if self.phase != "awaiting_answer" or len(self.answers) >= len(self.quiz):
            return None
        return self.quiz[len(self.answers)]

    @property
    def answer_due_ms(self) -> int | None:
        """Study time at which the waiting question counts as skipped."""
        if self.wait_started_ms is None or self.waiting_question is None:
            return None
        return self.wait_started_ms + self.policy.answer_timeout_ms

    @property
    def pending(self) -> PendingAnswer | None:
        """The waiting question's answer being graded, if any."""
        waiting = self.waiting_question
        pending = self.pending_answer
        if waiting is None or pending is None or pending.question_id != waiting.id:
            return None
        return pending

    @property
    def grading_due_ms(self) -> int | None:
        """Study time at which the wait for a pending answer's grade ends."""
        pending = self.pending
        if pending is None:
            return None
        return pending.received_ms + self.policy.grading_timeout_ms

    @property
    def wait_due_ms(self) -> int | None:
        """Study time at which the wait for the waiting question ends: the grading bound
        while an answer is being graded, else the answer window."""
        grading = self.grading_due_ms
        return grading if grading is not None else self.answer_due_ms

    def mastery_of(self, topic: str) -> TopicMastery:
        """The mastery entry of one of the run's topics (by its plan spelling)."""
        return next(entry for entry in self.mastery if entry.topic == topic)


def _ms(delta: dt.timedelta) -> int:
    # Whole milliseconds, so stored figures are integers and survive JSON exactly.
    return delta // dt.timedelta(milliseconds=1)
