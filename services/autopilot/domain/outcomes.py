"""What happened, as the driver and the student report it to
:func:`~services.autopilot.domain.apply`.

Driver outcomes name the ``action_id`` they answer: an outcome whose action is already
recorded is a redelivery and changes nothing. The student's outcomes (an answer, pause,
resume, stop) carry no action id: they are checked against the run's status and the waiting
question instead, and refused with the reason when they do not fit.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.autopilot.domain.state import QuizQuestion

Mastery = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _DriverOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    action_id: int = Field(ge=1)
    duration_ms: int = Field(default=0, ge=0)
    """How long the call took, as the driver measured it."""


class LearnerRead(_DriverOutcome):
    """The learner model's view of the run's topics (names it does not know are left out)."""

    kind: Literal["learner_read"] = "learner_read"
    mastery: dict[str, Mastery] = Field(default_factory=dict)
    reviews_due: dict[str, AwareDatetime] = Field(default_factory=dict)
    misconceptions: dict[str, list[str]] = Field(default_factory=dict)
    """Topic -> open misconceptions, newest first."""


class LessonTaught(_DriverOutcome):
    """The tutor's lesson."""

    kind: Literal["lesson_taught"] = "lesson_taught"
    content: str = Field(min_length=1)


class LessonSkipped(_DriverOutcome):
    """The tutor could not write the lesson (every round failed its loop and copy checks and
    there was nothing to quote): the turn is recorded with the reason and the run goes on,
    rather than ending over one lesson."""

    kind: Literal["lesson_skipped"] = "lesson_skipped"
    reason: str = Field(min_length=1)


class QuizGenerated(_DriverOutcome):
    """The quiz service's questions, answers included (they never leave the run)."""

    kind: Literal["quiz_generated"] = "quiz_generated"
    questions: list[QuizQuestion] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> QuizGenerated:
        ids = [question.id for question in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"question ids must be unique within a quiz: {ids}")
        return self


class QuizSkipped(_DriverOutcome):
    """No quiz could be made for the topic: the model wrote no valid question and the
    lessons' text gave none either. The run records why and goes on to the next topic
    rather than ending over it."""

    kind: Literal["quiz_skipped"] = "quiz_skipped"
    reason: str = Field(min_length=1)


class AnswerTimedOut(_DriverOutcome):
    """The waiting question's answer deadline passed: it is skipped, never graded."""

    kind: Literal["answer_timed_out"] = "answer_timed_out"
    question_id: str


class AnswerDiagnosed(_DriverOutcome):
    """The misconception behind a wrong answer; or, when the model could not write a
    diagnosis (``misconception`` None), why not: the answer stays graded and the run goes on
    rather than ending over a diagnosis."""

    kind: Literal["answer_diagnosed"] = "answer_diagnosed"
    question_id: str
    misconception: str | None = Field(default=None, min_length=1)
    unavailable: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> AnswerDiagnosed:
        if (self.misconception is None) == (self.unavailable is None):
            raise ValueError("a diagnosis has either a misconception or why it is unavailable")
        return self


class MasteryUpdated(_DriverOutcome):
    """The learner model's new mastery of the topic after the quiz."""

    kind: Literal["mastery_updated"] = "mastery_updated"
    topic: str
    score: Mastery
    next_review_at: AwareDatetime | None = None
    """The topic's next FSRS review, when the learner model schedules one."""


class RunFinished(_DriverOutcome):
    """The driver acted on :class:`~services.autopilot.domain.actions.FinishRun`."""

    kind: Literal["run_finished"] = "run_finished"


class ActionFailed(_DriverOutcome):
    """The action failed for good (dead-lettered, refused): the run cannot go on."""

    kind: Literal["action_failed"] = "action_failed"
    error: str = Field(min_length=1)


class AnswerGiven(BaseModel):
    """The student's answer to a question (any index: the run refuses one out of range).

    ``correct`` is the quiz service's verdict, for a question whose answer the run does not
    hold; without it the run grades against the question's ``correct_option_index``.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["answer_given"] = "answer_given"
    question_id: str
    answer_index: int
    correct: bool | None = None
    correct_option_index: int | None = None
    explanation: str | None = None


class AnswerReceived(BaseModel):
    """The student's answer to a question the quiz service grades, taken before its grade:
    the run marks it pending, so the wait does not time out while it is graded. Applying
    the same answer again changes nothing (a redelivered command)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["answer_received"] = "answer_received"
    question_id: str
    answer_index: int


class PauseRequested(BaseModel):
    """The student pauses the run."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["pause"] = "pause"


class ResumeRequested(BaseModel):
    """The student resumes a paused run."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["resume"] = "resume"


class StopRequested(BaseModel):
    """The student stops the run for good."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["stop"] = "stop"


DriverOutcome: TypeAlias = (
    LearnerRead
    | LessonTaught
    | LessonSkipped
    | QuizGenerated
    | QuizSkipped
    | AnswerTimedOut
    | AnswerDiagnosed
    | MasteryUpdated
    | RunFinished
    | ActionFailed
)
StudentOutcome: TypeAlias = (
    AnswerGiven | AnswerReceived | PauseRequested | ResumeRequested | StopRequested
)
Outcome = Annotated[DriverOutcome | StudentOutcome, Field(discriminator="kind")]
"""Anything :func:`~services.autopilot.domain.apply` records."""
