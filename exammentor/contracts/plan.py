"""Study plan contracts: the original system's shapes plus ExamMentor's exact extensions.

Field names of the original (``StudyPlan``, ``DailyPlan``, ``Topic``, ``PlanVerification``,
the verified-plan history and the router decision) are kept as they were, so its clients keep
working. Extension fields always have defaults, so a plan in the original shape still parses.

Hours are multiples of a quarter hour when the scheduler made them, so sums are exact floats.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_SYLLABUS_CHARS = 50_000
"""Longest pasted syllabus accepted, in characters (the gateway answers 413 above it)."""
MAX_GOAL_CHARS = 2_000
MAX_EXAM_TYPE_CHARS = 100
MIN_DAYS = 1
MAX_DAYS = 365
DEFAULT_DAYS = 7
DEFAULT_HOURS_PER_DAY = 8.0
MIN_HOURS_PER_DAY = 0.25
"""The scheduler plans in quarter hours, so a smaller cap could hold nothing."""
MAX_HOURS_PER_DAY = 16.0
MIN_DATE = dt.date(2000, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
"""Dates a plan may name: a year-long plan from the last day still fits in the calendar."""

Difficulty = Literal["easy", "medium", "hard"]
SessionKind = Literal["learn", "review", "revision"]
"""``learn``: first study of a topic; ``review``: a short spaced review; ``revision``: revision."""
DayType = Literal["study", "revision", "off"]
OverflowPolicy = Literal["refuse", "drop"]
Intent = Literal["plan", "explain", "quiz", "autopilot", "unknown"]


class Topic(BaseModel):
    """One study session of a topic on a day (the original's ``Topic`` plus session facts)."""

    name: str = Field(min_length=1)
    difficulty: Difficulty
    rationale: str
    # Finite only: a NaN would compare false against the cap and hide an overload.
    hours: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Hours of this session on this day; ``None`` in plans of the original shape."""
    kind: SessionKind = "learn"
    part: int | None = Field(default=None, ge=1)
    """Which session of a topic split across days this is (1-based), for ``learn`` sessions."""
    parts: int | None = Field(default=None, ge=1)
    """How many ``learn`` sessions the topic was split into."""


class DailyPlan(BaseModel):
    """One calendar day of a plan."""

    day: int = Field(ge=1)
    theme: str
    topics: list[Topic] = Field(default_factory=list)
    estimated_hours: float = Field(ge=0, allow_inf_nan=False)
    date: dt.date | None = None
    day_type: DayType = "study"


class DroppedTopic(BaseModel):
    """A topic left out of the plan: the syllabus did not fit (``overflow='drop'``), or the
    student's goal asked for it ("only Genetics", "skip Ecology"); ``reason`` says which."""

    name: str
    weight: float
    hours: float
    reason: str


class StudyPlan(BaseModel):
    """A day-by-day study plan."""

    exam_name: str
    total_days: int = Field(ge=0)
    overview: str
    schedule: list[DailyPlan] = Field(default_factory=list)
    critical_topics: list[str] = Field(default_factory=list, max_length=5)
    dropped_topics: list[DroppedTopic] = Field(default_factory=list)


class PrerequisiteViolation(BaseModel):
    """A topic whose first session comes before the first session of its prerequisite."""

    topic: str
    prerequisite: str
    topic_day: int
    prerequisite_day: int


class PlanVerification(BaseModel):
    """Result of checking a plan (the original's fields plus exact figures)."""

    is_valid: bool
    missing_topics: list[str] = Field(default_factory=list)
    overloaded_days: list[int] = Field(default_factory=list)
    """Day numbers whose hours exceed the daily cap."""
    prerequisite_issues: list[str] = Field(default_factory=list)
    critique: str = ""
    coverage_percent: float = Field(default=0.0, ge=0, le=100)
    """Required topics with a ``learn`` session / required topics x 100, one decimal."""
    revision_present: bool = False
    required_topics_count: int = Field(default=0, ge=0)
    scheduled_topics_count: int = Field(default=0, ge=0)
    """Required topics that have at least one ``learn`` session."""
    hours_cap: float | None = None
    prerequisite_violations: list[PrerequisiteViolation] = Field(default_factory=list)
    extra_topics: list[str] = Field(default_factory=list)
    """Topics learned in the plan that are not required; reported, not a defect."""


class TopicMove(BaseModel):
    """A topic learned on other days in the newer plan."""

    topic: str
    from_days: list[int]
    to_days: list[int]


class DayHoursChange(BaseModel):
    """A day whose total hours changed between two plans (0 when the day is absent)."""

    day: int
    hours_before: float
    hours_after: float


class PlanDiff(BaseModel):
    """What changed between two plans, judged on ``learn`` sessions and day totals."""

    topics_added: list[str] = Field(default_factory=list)
    topics_removed: list[str] = Field(default_factory=list)
    topics_moved: list[TopicMove] = Field(default_factory=list)
    hours_changed: list[DayHoursChange] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """Whether the two plans are the same as far as the diff can see."""
        return not (
            self.topics_added or self.topics_removed or self.topics_moved or self.hours_changed
        )


class PlanVersion(BaseModel):
    """One draft of the verify-and-fix loop, with its verification."""

    version: int = Field(ge=1)
    plan: StudyPlan
    verification: PlanVerification
    was_accepted: bool
    diff: PlanDiff | None = None
    """Changes from the previous version; ``None`` for the first one."""


class VerificationSummary(BaseModel):
    """The figures of the final verification, as the original reported them."""

    coverage_percent: float
    overloaded_days_count: int
    prerequisite_issues_count: int
    is_valid: bool
    iterations_used: int

    @classmethod
    def from_verification(
        cls, verification: PlanVerification, iterations_used: int
    ) -> VerificationSummary:
        """Summarise a verification.

        Args:
            verification: The verification of the final plan.
            iterations_used: How many drafts the loop produced.

        Returns:
            The summary the original's history response carried.
        """
        return cls(
            coverage_percent=verification.coverage_percent,
            overloaded_days_count=len(verification.overloaded_days),
            prerequisite_issues_count=len(verification.prerequisite_issues),
            is_valid=verification.is_valid,
            iterations_used=iterations_used,
        )


class VerifiedPlanHistory(BaseModel):
    """The original's generate-verified-with-history response."""

    final_plan: StudyPlan
    versions: list[PlanVersion]
    total_iterations: int = Field(ge=0)
    self_correction_applied: bool
    verification_summary: VerificationSummary
    from_cache: bool = False


class RouterScope(BaseModel):
    """What part of an exam a request is about."""

    subject: str = ""
    sub_subject: str | None = None
    topics: list[str] = Field(default_factory=list)

    @field_validator("subject", "sub_subject")
    @classmethod
    def _lower_key(cls, value: str | None) -> str | None:
        # Registry keys are lower case; models answer "Physics" as often as "physics".
        return None if value is None else value.strip().lower()


class RouterDecision(BaseModel):
    """Intent, exam and scope of a free-text request.

    ``exam`` is one of the registry's exam ids (``neet``, ``jee``, ``upsc``, ``cat`` in the
    original) or ``none``; it is a string rather than a fixed set so that exams an operator
    adds to the registry route too. The service cross-checks it against the registry.
    """

    intent: Intent
    exam: str = "none"
    scope: RouterScope = Field(default_factory=RouterScope)
    confidence: float = Field(ge=0, le=1)
    needs_clarification: bool = False
    clarifying_question: str | None = None

    @field_validator("exam")
    @classmethod
    def _lower_exam(cls, value: str) -> str:
        return value.strip().lower() or "none"


def _require_text(value: str, field: str) -> None:
    """Refuse strings that are not storable text (lone surrogates, NUL characters)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry lone surrogates ("\ud800"): decoded text that was never UTF-8.
        raise PydanticCustomError(
            "text_not_utf8", "{field} is not valid UTF-8 text", {"field": field}
        ) from None
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refuse here rather than fail at the insert.
        raise PydanticCustomError(
            "text_has_nul", "{field} contains NUL characters", {"field": field}
        )


class PlanRequest(BaseModel):
    """A request for a study plan (the original's inputs plus scheduling options).

    Leave ``syllabus_text`` out to plan from the registry's syllabus of ``exam_type``.
    Validation errors carry a ``type`` the gateway can map to a status, and a message that
    names the field and the limit: ``syllabus_too_large`` -> 413, all others -> 422.
    """

    model_config = ConfigDict(extra="forbid")

    syllabus_text: str | None = None
    exam_type: str = Field(default="", max_length=MAX_EXAM_TYPE_CHARS)
    goal: str
    days: int = Field(
        default=DEFAULT_DAYS, json_schema_extra={"minimum": MIN_DAYS, "maximum": MAX_DAYS}
    )
    hours_per_day: float = Field(
        default=DEFAULT_HOURS_PER_DAY,
        allow_inf_nan=False,
        json_schema_extra={"minimum": MIN_HOURS_PER_DAY, "maximum": MAX_HOURS_PER_DAY},
    )
    """Cap on study hours per day."""
    start_date: dt.date | None = None
    """First day of the plan; the service uses today when it is left out."""
    exam_date: dt.date | None = None
    """The plan ends the day before the exam when the exam falls inside ``days``."""
    days_off: list[dt.date] = Field(default_factory=list, max_length=MAX_DAYS + 1)
    """Dates with no study at all."""
    overflow: OverflowPolicy = "refuse"
    """What to do when the syllabus does not fit: refuse with the numbers, or drop topics."""

    @field_validator("syllabus_text")
    @classmethod
    def _check_syllabus(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > MAX_SYLLABUS_CHARS:
            raise PydanticCustomError(
                "syllabus_too_large",
                "syllabus_text is {length} characters; the limit is {limit}",
                {"length": f"{len(value):,}", "limit": f"{MAX_SYLLABUS_CHARS:,}"},
            )
        _require_text(value, "syllabus_text")
        if not value.strip():
            raise PydanticCustomError(
                "syllabus_empty",
                "syllabus_text is empty; paste a syllabus or leave the field out to use "
                "the exam's built-in syllabus",
            )
        return value

    @field_validator("exam_type")
    @classmethod
    def _check_exam_type(cls, value: str) -> str:
        _require_text(value, "exam_type")
        return value.strip()

    @field_validator("goal")
    @classmethod
    def _check_goal(cls, value: str) -> str:
        _require_text(value, "goal")
        if len(value) > MAX_GOAL_CHARS:
            raise PydanticCustomError(
                "goal_too_long",
                "goal is {length} characters; the limit is {limit}",
                {"length": f"{len(value):,}", "limit": f"{MAX_GOAL_CHARS:,}"},
            )
        if not value.strip():
            raise PydanticCustomError(
                "goal_blank", "goal is empty or only whitespace; say what the plan should achieve"
            )
        return value.strip()

    @field_validator("days")
    @classmethod
    def _check_days(cls, value: int) -> int:
        if not MIN_DAYS <= value <= MAX_DAYS:
            raise PydanticCustomError(
                "days_out_of_range",
                "days must be between {min} and {max}, got {value}",
                {"min": MIN_DAYS, "max": MAX_DAYS, "value": value},
            )
        return value

    @field_validator("hours_per_day")
    @classmethod
    def _check_hours_per_day(cls, value: float) -> float:
        if not MIN_HOURS_PER_DAY <= value <= MAX_HOURS_PER_DAY:
            raise PydanticCustomError(
                "hours_per_day_out_of_range",
                "hours_per_day must be between {min} and {max}, got {value}",
                {"min": MIN_HOURS_PER_DAY, "max": MAX_HOURS_PER_DAY, "value": value},
            )
        return value

    @field_validator("start_date", "exam_date")
    @classmethod
    def _check_date(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        if value is not None and not MIN_DATE <= value <= MAX_DATE:
            raise PydanticCustomError(
                "date_out_of_range",
                "{field} must be between {min} and {max}, got {value}",
                {
                    "field": info.field_name,
                    "min": str(MIN_DATE),
                    "max": str(MAX_DATE),
                    "value": str(value),
                },
            )
        return value

    @field_validator("days_off")
    @classmethod
    def _sort_days_off(cls, value: list[dt.date]) -> list[dt.date]:
        # A set semantics: the same date twice is one day off, and order carries no meaning.
        return sorted(set(value))

    @model_validator(mode="after")
    def _check_combination(self) -> PlanRequest:
        if self.syllabus_text is None and not self.exam_type:
            raise PydanticCustomError(
                "syllabus_missing",
                "give syllabus_text, or an exam_type whose syllabus the registry knows",
            )
        if (
            self.start_date is not None
            and self.exam_date is not None
            and self.exam_date <= self.start_date
        ):
            raise PydanticCustomError(
                "exam_date_not_after_start",
                "exam_date {exam_date} must be after start_date {start_date}",
                {"exam_date": str(self.exam_date), "start_date": str(self.start_date)},
            )
        return self


class PlanResult(BaseModel):
    """What ``plan.generate`` returns: a verified plan with its history, or a question.

    With ``needs_clarification`` the planner could not plan without guessing:
    ``clarifying_question`` and ``options`` say what to choose, and no plan fields are set.
    Otherwise the original's history shape (``final_plan``, ``versions``, ...) is set, with
    ExamMentor's exact verification and reports. ``routing``, ``capacity``, ``fix_log`` and
    ``prose`` are reports for people and may gain keys within a version.
    """

    plan_id: UUID | None = None
    needs_clarification: bool = False
    clarifying_question: str | None = None
    options: list[str] = Field(default_factory=list)
    final_plan: StudyPlan | None = None
    versions: list[PlanVersion] = Field(default_factory=list)
    total_iterations: int = Field(default=0, ge=0)
    self_correction_applied: bool = False
    verification_summary: VerificationSummary | None = None
    from_cache: bool = False
    verification: PlanVerification | None = None
    routing: dict[str, Any] = Field(default_factory=dict)
    capacity: dict[str, Any] = Field(default_factory=dict)
    topic_source: str = ""
    excluded_topics: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    fix_log: list[dict[str, Any]] = Field(default_factory=list)
    prose: dict[str, Any] = Field(default_factory=dict)

    def history(self) -> VerifiedPlanHistory:
        """The original's generate-verified-with-history shape.

        Raises:
            ValueError: The result is a clarifying question, not a plan.
        """
        if self.final_plan is None or self.verification_summary is None:
            raise ValueError("a clarifying question has no plan history")
        return VerifiedPlanHistory(
            final_plan=self.final_plan,
            versions=self.versions,
            total_iterations=self.total_iterations,
            self_correction_applied=self.self_correction_applied,
            verification_summary=self.verification_summary,
            from_cache=self.from_cache,
        )
