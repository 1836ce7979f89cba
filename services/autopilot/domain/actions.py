"""What the driver is told to do next (:func:`~services.autopilot.domain.next_action`).

Every action but :class:`Idle` has an ``action_id``: the run's count of recorded outcomes
plus one. The driver sends the command with ``key`` as its idempotency key and applies the
outcome under the same ``action_id``. An action the driver lost in a crash is given again
with the same id and key, so a tutor or quiz call already made is answered from that
service's inbox rather than paid for twice.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from exammentor.contracts.autopilot import Difficulty, QuestionView
from services.autopilot.domain.state import GradedAnswer, QuizQuestion


class _DriverAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    action_id: int = Field(ge=1)
    key: str
    """Idempotency key of the command: ``autopilot:<session>:<run>:<action_id>``."""


class ReadLearner(_DriverAction):
    """Read the learner model's mastery, FSRS due dates and open misconceptions of the topics;
    answer with :class:`~services.autopilot.domain.outcomes.LearnerRead`."""

    kind: Literal["read_learner"] = "read_learner"
    topics: list[str]


class TeachLesson(_DriverAction):
    """Call the tutor's lesson command; answer with ``LessonTaught``."""

    kind: Literal["teach_lesson"] = "teach_lesson"
    topic: str
    exam_type: str
    lesson_number: int = Field(ge=1)
    lessons_total: int = Field(ge=1)
    previous_lessons: list[str]
    """Texts of the topic's earlier lessons in this loop, so the next one builds on them."""


class GenerateQuiz(_DriverAction):
    """Call the quiz generator; answer with ``QuizGenerated``."""

    kind: Literal["generate_quiz"] = "generate_quiz"
    topic: str
    exam_type: str
    question_count: int = Field(ge=1)
    difficulty: Difficulty
    """From the learner model's mastery of the topic (the policy's bands)."""
    misconceptions: list[str]
    """The topic's newest open misconceptions, newest first."""
    lessons: list[str] = Field(default_factory=list)
    """The topic's lessons just taught: the quiz builds the questions the model cannot
    write from their text."""


class AwaitAnswer(_DriverAction):
    """Wait for the student's answer until ``until``; then apply ``AnswerTimedOut`` (when
    ``until`` is the answer deadline) or read the next action (the session's time is up).

    While an answer is being graded (``grading``), ``answer_deadline`` and ``until`` are the
    end of the wait for its grade: the grade is waited for past the session's end, and
    ``AnswerTimedOut`` then records the answer ungraded."""

    kind: Literal["await_answer"] = "await_answer"
    question: QuestionView
    question_number: int = Field(ge=1)
    questions_total: int = Field(ge=1)
    answer_deadline: AwareDatetime
    until: AwareDatetime
    """The earlier of the answer deadline and the end of the session's study time."""
    grading: bool = False
    """An answer arrived in time and waits for its grade."""


class DiagnoseAnswer(_DriverAction):
    """Call the misconception step for a wrong answer; answer with ``AnswerDiagnosed``."""

    kind: Literal["diagnose_answer"] = "diagnose_answer"
    topic: str
    question: QuizQuestion
    answer_index: int


class UpdateMastery(_DriverAction):
    """Give the learner model the quiz's results; answer with ``MasteryUpdated``."""

    kind: Literal["update_mastery"] = "update_mastery"
    topic: str
    questions: list[QuizQuestion]
    answers: list[GradedAnswer]
    """One per question asked; skipped ones say so and are not graded."""


class FinishRun(_DriverAction):
    """The study time is up: apply ``RunFinished``."""

    kind: Literal["finish_run"] = "finish_run"
    reason: str


class Idle(BaseModel):
    """Nothing to do: the run is paused or over."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["idle"] = "idle"
    reason: str


DriverAction: TypeAlias = (
    ReadLearner
    | TeachLesson
    | GenerateQuiz
    | AwaitAnswer
    | DiagnoseAnswer
    | UpdateMastery
    | FinishRun
)
Action = Annotated[DriverAction | Idle, Field(discriminator="kind")]
"""Anything :func:`~services.autopilot.domain.next_action` answers."""
