"""Domain events integrators can subscribe to: one pydantic model per type and version.

An event travels in an :class:`~exammentor.contracts.envelope.EventEnvelope` whose ``type``
and ``version`` name the model of its ``payload``; the topic is ``<prefix>.evt.<domain>``
(the first part of the type). A new field with a default is a compatible change within a
version; anything else is a new version, published beside the old one until consumers move.
``docs/asyncapi.json`` is generated from :data:`EVENTS` (``scripts/gen_asyncapi.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class DomainEvent(BaseModel):
    """Base of event payloads: each subclass names its type and version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    SUMMARY: ClassVar[str]


class PlanGeneratedV1(DomainEvent):
    """A study plan was generated (or answered from the cache) and stored."""

    TYPE: ClassVar[str] = "plan.generated"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A study plan was generated and stored for a student."

    plan_id: UUID
    exam_name: str
    total_days: int = Field(ge=0)
    start_date: dt.date | None = None
    topics_count: int = Field(ge=0)
    dropped_topics_count: int = Field(ge=0)
    critical_topics: list[str]
    from_cache: bool


class PlanVerifiedV1(DomainEvent):
    """The exact verification of a stored plan, with its coverage figures."""

    TYPE: ClassVar[str] = "plan.verified"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A stored plan was verified exactly (coverage, load, order)."

    plan_id: UUID
    is_valid: bool
    coverage_percent: float = Field(ge=0, le=100)
    required_topics_count: int = Field(ge=0)
    scheduled_topics_count: int = Field(ge=0)
    missing_topics_count: int = Field(ge=0)
    overloaded_days_count: int = Field(ge=0)
    prerequisite_issues_count: int = Field(ge=0)
    revision_present: bool
    iterations_used: int = Field(ge=0)
    self_correction_applied: bool
    from_cache: bool


class TutorExplainedV1(DomainEvent):
    """The tutor answered: a structured explanation, a streamed answer or a lesson."""

    TYPE: ClassVar[str] = "tutor.explained"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = (
        "The tutor answered (explain, stream or lesson): tokens, latency and cited pages."
    )

    kind: Literal["explain", "stream", "lesson"]
    topic: str
    topic_id: str | None = None
    """The chat the answer belongs to, when the request named one."""
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_ms: float = Field(ge=0)
    cited_pages: list[int] = Field(default_factory=list)
    """Pages of the student's material the answer cites, in order of first citation."""
    partial: bool = False
    """True when the answer stopped early (the client went away, or the model failed)."""


class SystemEchoedV1(DomainEvent):
    """A ``system.echo`` command was applied (smoke checks and the pipeline benchmark)."""

    TYPE: ClassVar[str] = "system.echoed"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "An echo command went through the pipeline."

    text: str
    service: str


class QuizGeneratedV1(DomainEvent):
    """A quiz was generated, checked and stored for a student (its answers are not in it)."""

    TYPE: ClassVar[str] = "quiz.generated"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A checked quiz was stored for a student."

    quiz_id: UUID
    topic: str
    questions_count: int = Field(ge=0)
    requested_questions: int = Field(ge=0)
    difficulty: str
    targets: list[str]
    from_image: bool = False


class AnswerGradedV1(DomainEvent):
    """An answer to a stored question was graded in code and logged."""

    TYPE: ClassVar[str] = "quiz.answer_graded"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A student's answer was graded in code and logged."

    answer_id: UUID
    question_id: str
    topic: str
    concept: str
    outcome: str
    """correct, wrong or skipped."""


class MisconceptionDetectedV1(DomainEvent):
    """A wrong answer was diagnosed and recorded as an open misconception."""

    TYPE: ClassVar[str] = "misconception.detected"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A misconception was diagnosed and recorded, open."

    misconception_id: str
    topic: str
    concept: str
    description: str
    question_id: str
    redemption_question_id: str


class MisconceptionResolvedV1(DomainEvent):
    """A misconception's due re-check was answered right: it is resolved."""

    TYPE: ClassVar[str] = "misconception.resolved"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A misconception was re-checked when due and resolved."

    misconception_id: str
    topic: str
    concept: str
    reopened_times: int = Field(ge=0)


class MasteryChangedV1(DomainEvent):
    """The learner model's estimate of a concept (and its topic) moved after an answer."""

    TYPE: ClassVar[str] = "learner.mastery_changed"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A student's mastery of a concept and its topic changed."

    topic: str
    concept: str
    p_mastery_before: float | None = Field(default=None, ge=0, le=1)
    p_mastery: float = Field(ge=0, le=1)
    status: str
    topic_score: float = Field(ge=0, le=100)
    topic_status: str
    attempts: int = Field(ge=0)
    next_review: dt.datetime | None = None


class AutopilotStartedV1(DomainEvent):
    """An autopilot run started."""

    TYPE: ClassVar[str] = "autopilot.started"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "An autopilot run of a study session started."

    session_id: UUID
    run_number: int = Field(ge=1)

    target_duration_minutes: int = Field(ge=1)
    topics: list[str]


class AutopilotStepV1(DomainEvent):
    """One logged step of a run: a decision or what happened, with its reasoning."""

    TYPE: ClassVar[str] = "autopilot.step"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "An autopilot run logged a step (decision, lesson, answer ...)."

    session_id: UUID
    run_number: int = Field(ge=1)

    number: int = Field(ge=1)
    action: str
    reasoning: str
    duration_ms: int = Field(ge=0)
    status: str
    phase: str
    topic: str | None = None


class AutopilotPausedV1(DomainEvent):
    """The student paused a run; its clock stopped."""

    TYPE: ClassVar[str] = "autopilot.paused"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "An autopilot run was paused."

    session_id: UUID
    run_number: int = Field(ge=1)

    elapsed_seconds: float = Field(ge=0)


class AutopilotResumedV1(DomainEvent):
    """The student resumed a paused run."""

    TYPE: ClassVar[str] = "autopilot.resumed"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "A paused autopilot run was resumed."

    session_id: UUID
    run_number: int = Field(ge=1)

    elapsed_seconds: float = Field(ge=0)


class AutopilotCompletedV1(DomainEvent):
    """A run ended by itself: time up, every topic mastered, or failed for good."""

    TYPE: ClassVar[str] = "autopilot.completed"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "An autopilot run ended by itself (completed or failed)."

    session_id: UUID
    run_number: int = Field(ge=1)

    status: str
    reason: str
    elapsed_seconds: float = Field(ge=0)
    topics_completed: list[str]


class AutopilotStoppedV1(DomainEvent):
    """The student stopped a run."""

    TYPE: ClassVar[str] = "autopilot.stopped"
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str] = "An autopilot run was stopped by the student."

    session_id: UUID
    run_number: int = Field(ge=1)

    elapsed_seconds: float = Field(ge=0)
    topics_completed: list[str]


EVENTS: dict[tuple[str, int], type[DomainEvent]] = {
    (model.TYPE, model.VERSION): model
    for model in (
        PlanGeneratedV1,
        PlanVerifiedV1,
        SystemEchoedV1,
        TutorExplainedV1,
        QuizGeneratedV1,
        AnswerGradedV1,
        MisconceptionDetectedV1,
        MisconceptionResolvedV1,
        MasteryChangedV1,
        AutopilotStartedV1,
        AutopilotStepV1,
        AutopilotPausedV1,
        AutopilotResumedV1,
        AutopilotCompletedV1,
        AutopilotStoppedV1,
    )
}
"""Every published event type and version, with its payload model."""
