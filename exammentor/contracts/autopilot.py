"""Autopilot contracts: the original's request and response shapes, the run log and the watch
stream, with ExamMentor's exact extensions.

Field names of the original (start, status, steps, topic mastery, answer) are kept as they
were; extension fields have defaults or are additions to responses, so its clients keep
working. Rules these shapes keep:

- ``current_question`` is a :class:`QuestionView`: it has no field for the correct option or
  the explanation, so the answer cannot leak through the status (the original sent
  ``correct_option_index`` to the client).
- A run's ``status`` is one of :data:`AutopilotStatus`: a run the student stopped says
  ``stopped``, one that ran out of time or of topics says ``completed``, one whose tutor or
  quiz call failed for good says ``failed``.
- ``current_phase`` (status and watch) names a phase as the original did where ours is only
  finer: a question waiting for its answer is ``quizzing``, the phase the original's page
  shows a question in; ``phase_detail`` keeps the precise phase (``awaiting_answer``).
- Steps are numbered from 1 without gaps within a run; the watch stream's ``seq`` is the step
  number, so a client that lost its stream resumes after the last ``seq`` it saw.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError

from exammentor.contracts.commands import SESSION_NOT_FOUND, Command, ErrorCode
from exammentor.contracts.plan import StudyPlan

MIN_DURATION_MINUTES = 5
MAX_DURATION_MINUTES = 240
DEFAULT_DURATION_MINUTES = 30
MAX_EXAM_TYPE_CHARS = 100
MAX_FOCUS_TOPICS = 100

AutopilotStatus = Literal["running", "paused", "stopped", "completed", "failed"]
"""``stopped``: the student stopped it; ``completed``: time up or every topic mastered;
``failed``: a tutor or quiz call failed for good and the run could not go on."""
FINISHED_STATUSES: frozenset[str] = frozenset({"stopped", "completed", "failed"})
"""Statuses after which a start begins a fresh run."""

AutopilotPhase = Literal[
    "choosing_topic",
    "teaching",
    "quizzing",
    "awaiting_answer",
    "diagnosing",
    "updating_mastery",
    "finished",
]
"""Where the loop is: choose a topic, two lessons, a quiz, an answer per question, a
diagnosis per wrong answer, the learner model's update, then the next topic."""
ALL_PHASES: frozenset[str] = frozenset(get_args(AutopilotPhase))

ORIGINAL_PHASE_NAMES: dict[str, AutopilotPhase] = {"awaiting_answer": "quizzing"}
"""Phases the original named otherwise, by the name its clients test for: its quiz was one
phase, ``quizzing``, also while a question waited (its page shows a question only in
``quizzing``). ``current_phase`` says the original's name; ``phase_detail`` keeps ours."""


def client_phase(phase: AutopilotPhase) -> AutopilotPhase:
    """The name ``current_phase`` gives a phase: the original's where it named it otherwise.

    Args:
        phase: Where the run's loop is.

    Returns:
        ``quizzing`` for ``awaiting_answer``; any other phase as it is.
    """
    return ORIGINAL_PHASE_NAMES.get(phase, phase)


def _with_phase_detail(data: Any) -> Any:
    """A view's input with ``phase_detail`` (the precise phase) and ``current_phase`` (its
    client name). A view written without ``phase_detail`` (by a worker, or stored before the
    field existed) has the precise phase in ``current_phase``."""
    if not isinstance(data, dict) or "current_phase" not in data:
        return data
    detail = data.get("phase_detail") or data["current_phase"]
    if detail not in ALL_PHASES:
        return data  # the Literal names the bad value
    return {**data, "phase_detail": detail, "current_phase": client_phase(detail)}


StepAction = Literal[
    "start",
    "choose_topic",
    "lesson",
    "lesson_skipped",
    "quiz",
    "quiz_skipped",
    "answer",
    "skip",
    "diagnose",
    "update_mastery",
    "pause",
    "resume",
    "stop",
    "complete",
    "fail",
]
"""What a logged step records. ``skip`` is an answer wait that timed out: never graded.
``lesson_skipped``: the tutor could not write a lesson that passes its loop and copy checks
(``answer_unusable``); the turn counts and the run goes on. ``quiz_skipped``: no quiz could be
made for the topic (no valid question from the model and none from the lessons' text); the
step says why and the run goes on to the next topic."""

Difficulty = Literal["easy", "medium", "hard"]


def topic_key(name: str) -> str:
    """The form two spellings of one plan topic share: case and spacing ignored.

    Args:
        name: A topic name as a plan, a request or the learner model writes it.

    Returns:
        The name case-folded with runs of whitespace made single spaces.
    """
    return " ".join(name.split()).casefold()


def plan_topic_names(plan: StudyPlan) -> list[str]:
    """The distinct topic names of a plan, in the order the plan first has them.

    Args:
        plan: A study plan; every session kind (learning, review, revision) counts.

    Returns:
        Names as the plan first spells them, one per :func:`topic_key`.
    """
    seen: set[str] = set()
    names: list[str] = []
    for day in plan.schedule:
        for topic in day.topics:
            key = topic_key(topic.name)
            if key and key not in seen:
                seen.add(key)
                names.append(topic.name.strip())
    return names


class AutopilotStartRequest(BaseModel):
    """``POST /api/autopilot/start``: the original's body plus a focus and an exam date.

    Validation errors carry a ``type`` and a message that names the numbers: the duration's
    bounds (``greater_than_equal``, ``less_than_equal``), ``plan_has_no_topics`` and
    ``focus_not_in_plan`` (all 422).
    """

    model_config = ConfigDict(extra="forbid")

    study_plan: StudyPlan
    exam_type: str = Field(default="", max_length=MAX_EXAM_TYPE_CHARS)
    duration_minutes: int = Field(
        default=DEFAULT_DURATION_MINUTES, ge=MIN_DURATION_MINUTES, le=MAX_DURATION_MINUTES
    )
    """Minutes of study (5 to 240), paused time not counted."""
    focus_topics: list[str] | None = Field(default=None, max_length=MAX_FOCUS_TOPICS)
    """Plan topics to study, instead of all of them; each must be a topic of the plan."""
    exam_date: dt.date | None = None
    """Weighs heavy topics more as the exam nears."""
    user_id: UUID | None = None
    """The original's clients send the student's id; accepted only when it is the bearer
    token's user (the gateway refuses another with ``user_mismatch``) and not sent on."""

    @model_validator(mode="after")
    def _check(self) -> AutopilotStartRequest:
        names = plan_topic_names(self.study_plan)
        if not names:
            raise PydanticCustomError(
                "plan_has_no_topics",
                "study_plan has no topics in schedule[].topics[]; the autopilot studies the "
                "plan's topics only",
            )
        if self.focus_topics is not None:
            known = {topic_key(name) for name in names}
            unknown = [name for name in self.focus_topics if topic_key(name) not in known]
            if unknown or not self.focus_topics:
                raise PydanticCustomError(
                    "focus_not_in_plan",
                    "focus_topics must name topics of the plan; not in it: {unknown} "
                    "(the plan has {count} topics)",
                    {"unknown": ", ".join(unknown) or "(empty list)", "count": len(names)},
                )
        return self


class AutopilotStartResponse(BaseModel):
    """What a start answers (the original's fields plus the run number)."""

    session_id: UUID
    status: AutopilotStatus
    target_duration_minutes: int
    started_at: AwareDatetime
    run_number: int = Field(default=1, ge=1)
    """1 for a session's first run; a start after a finished run begins the next one."""


class TopicMastery(BaseModel):
    """A plan topic's mastery as the learner model last reported it, and this run's work."""

    topic: str
    score: float = Field(ge=0, le=1, allow_inf_nan=False)
    attempts: int = Field(default=0, ge=0)
    """Questions on the topic answered in this run (a skipped question is no attempt)."""
    misconceptions: list[str] = Field(default_factory=list)
    """Open misconceptions on the topic, newest first."""
    last_attempted: AwareDatetime | None = None


class QuestionView(BaseModel):
    """A quiz question as the student sees it while it waits: never its answer."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    question_type: str = "multiple_choice"
    options: list[str]
    difficulty: Difficulty = "medium"
    concept_tested: str = ""
    source: Literal["model", "extract"] = "model"
    """Who wrote the question: the model, or code from a sentence of the lesson (an extract)."""
    page: int | None = None
    """For an extract from the student's material: the page of its sentence, where known."""


class AutopilotStep(BaseModel):
    """One logged decision or event of a run (the original's fields plus its number and the
    status and phase it left the run in)."""

    number: int = Field(ge=1)
    """Position in the run's log, from 1 without gaps."""
    timestamp: AwareDatetime
    action: StepAction
    data: dict[str, JsonValue] = Field(default_factory=dict)
    reasoning: str
    duration_ms: int = Field(ge=0)
    status: AutopilotStatus
    phase: AutopilotPhase


class AutopilotStatusResponse(BaseModel):
    """``GET /api/autopilot/status/{id}`` (the original's fields plus the run's identity,
    the answer deadline and why it ended)."""

    session_id: UUID
    run_number: int = Field(ge=1)
    status: AutopilotStatus
    current_phase: AutopilotPhase
    """The phase by the original's name (:func:`client_phase`): ``quizzing`` also while a
    question waits, as the original's page expects."""
    phase_detail: AutopilotPhase = "choosing_topic"
    """The precise phase (``awaiting_answer`` while a question waits); filled from
    ``current_phase`` when a view is built without it."""
    current_topic: str | None
    topics_completed: list[str]
    elapsed_seconds: float = Field(ge=0)
    """Study time so far; paused time is not counted."""
    target_duration_minutes: int
    topic_mastery: list[TopicMastery]
    steps: list[AutopilotStep]
    started_at: AwareDatetime
    completed_at: AwareDatetime | None
    current_content: str | None
    """The newest lesson's text while the topic is taught."""
    current_question: QuestionView | None
    awaiting_input: bool
    answer_deadline: AwareDatetime | None = None
    """When the waiting question counts as skipped, unless the run is paused first."""
    end_reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _phases(cls, data: Any) -> Any:
        return _with_phase_detail(data)


class AutopilotAnswerRequest(BaseModel):
    """``POST /api/autopilot/answer/{id}``: an answer, keyed by the question it answers.

    The original's clients send ``{answer_index}`` alone: an empty ``question_id`` means the
    question that waits, and the gateway names it before the command is sent (no question
    waiting is ``answer_refused``), so the autopilot service always gets an id.
    """

    model_config = ConfigDict(extra="forbid")

    question_id: str = ""
    """The waiting question's id; empty: the one question that waits."""
    answer_index: int = Field(ge=0)
    """0-based option index; a timeout is never sent as an index."""


class AutopilotAnswerResponse(BaseModel):
    """The original's answer reply."""

    status: Literal["answer_received"] = "answer_received"


class AutopilotControlResponse(BaseModel):
    """Pause, resume and stop answer the run's new status (the original's body)."""

    status: AutopilotStatus
    session_id: UUID


class AutopilotWatchEvent(BaseModel):
    """One line of the watch stream (NDJSON) and one message of its gRPC twin.

    ``seq`` is the step's number: events come in ``seq`` order without gaps within a run.
    ``current_content`` and ``current_question`` are the run's present, so they are filled on
    the newest event only; older events (a replay) carry their step, whose data keeps the
    lesson text and the questions (without answers) of that moment.
    """

    seq: int = Field(ge=1)
    session_id: UUID
    run_number: int = Field(ge=1)
    step: AutopilotStep
    status: AutopilotStatus
    current_phase: AutopilotPhase
    """The original's name, as in the status (``quizzing`` while a question waits)."""
    phase_detail: AutopilotPhase = "choosing_topic"
    """The precise phase, as in the status."""
    current_topic: str | None = None
    awaiting_input: bool = False
    current_content: str | None = None
    current_question: QuestionView | None = None

    @model_validator(mode="before")
    @classmethod
    def _phases(cls, data: Any) -> Any:
        return _with_phase_detail(data)


AutopilotControl = Literal["pause", "resume", "stop"]


class AutopilotControlRequest(BaseModel):
    """The payload of ``autopilot.control``: what the student asks of the run."""

    model_config = ConfigDict(extra="forbid")

    control: AutopilotControl


# --- Commands ------------------------------------------------------------------------------
# Sent by the gateway to the autopilot service; the study session travels on the envelope
# (``session_id``). Refusals are the original's 400 and 404, with the reason in the message.

AUTOPILOT_NOT_FOUND = ErrorCode(
    "autopilot_not_found",
    404,
    "NOT_FOUND",
    "The study session has no autopilot run (or is not the caller's).",
)
AUTOPILOT_ACTIVE = ErrorCode(
    "autopilot_active",
    400,
    "FAILED_PRECONDITION",
    "The session's run is still running or paused; stop it before starting another.",
)
CONTROL_REFUSED = ErrorCode(
    "control_refused",
    400,
    "FAILED_PRECONDITION",
    "Pause, resume or stop does not fit the run's status; the message names both.",
)
ANSWER_REFUSED = ErrorCode(
    "answer_refused",
    400,
    "FAILED_PRECONDITION",
    "No question waits, another question waits, the index is out of range or the wait "
    "ended; the message says which.",
)
RUN_SETUP_REFUSED = ErrorCode(
    "run_setup_refused",
    422,
    "INVALID_ARGUMENT",
    "The plan's topics cannot be studied (weights, prerequisite cycle); the message says why.",
)

AUTOPILOT_START: Command[AutopilotStartRequest, AutopilotStartResponse] = Command(
    "autopilot.start",
    1,
    "autopilot",
    AutopilotStartRequest,
    AutopilotStartResponse,
    errors=(SESSION_NOT_FOUND, AUTOPILOT_ACTIVE, RUN_SETUP_REFUSED),
    summary=(
        "Start a durable autopilot run of a study session; a finished session begins a "
        "fresh run and keeps the earlier runs readable."
    ),
)
AUTOPILOT_CONTROL: Command[AutopilotControlRequest, AutopilotControlResponse] = Command(
    "autopilot.control",
    1,
    "autopilot",
    AutopilotControlRequest,
    AutopilotControlResponse,
    errors=(AUTOPILOT_NOT_FOUND, CONTROL_REFUSED),
    summary="Pause, resume or stop a run; acts at once, also during a lesson or a wait.",
)
AUTOPILOT_ANSWER: Command[AutopilotAnswerRequest, AutopilotAnswerResponse] = Command(
    "autopilot.answer",
    1,
    "autopilot",
    AutopilotAnswerRequest,
    AutopilotAnswerResponse,
    errors=(AUTOPILOT_NOT_FOUND, ANSWER_REFUSED),
    summary="Answer the question the run waits for, keyed by its id; graded by the quiz.",
)
AUTOPILOT_COMMANDS: tuple[Command[Any, Any], ...] = (
    AUTOPILOT_START,
    AUTOPILOT_CONTROL,
    AUTOPILOT_ANSWER,
)
"""Every command of the autopilot service."""


class LearnerSnapshot(BaseModel):
    """What the autopilot reads of the learner model for a run's topics (by plan spelling):
    mastery 0..1, FSRS review due dates and open misconceptions, newest first."""

    mastery: dict[str, float] = Field(default_factory=dict)
    reviews_due: dict[str, AwareDatetime] = Field(default_factory=dict)
    misconceptions: dict[str, list[str]] = Field(default_factory=dict)
