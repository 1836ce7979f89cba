"""Who owns each table of ``migrations/``: the one place that writes it, and every read of it
by someone else, with its reason.

Rules (``tests/unit/test_table_ownership.py`` reads the SQL in the Python sources of
``services/`` and ``exammentor/`` and keeps them):

- every table has exactly one owner (:data:`TABLES`);
- a table is written (``INSERT``, ``UPDATE``, ``DELETE``, ``COPY``, ``TRUNCATE``) only in its
  owner's writer modules (:data:`WRITERS`): a service's ``repo.py``, or the kit module that
  keeps a table every service shares (the delivery pipeline, study sessions, operations);
- ``exammentor.read_models.<owner>`` reads only the tables ``<owner>`` owns and writes none:
  it is the owner's data as others see it;
- any other read of a table outside its owner's files is a :class:`ForeignRead` here: SQL of
  one module that reads another owner's table, or the use of another owner's read model by a
  service; the few writes outside the owner are :class:`ForeignWrite` (operator jobs only).

Kit modules are named by their dotted module path, so a module that moves is renamed here too
(the test fails on a module that does not exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Owner = Literal[
    "planner", "tutor", "quiz", "autopilot", "gateway", "pipeline", "sessions", "operations"
]

WRITERS: dict[Owner, tuple[str, ...]] = {
    "planner": ("services.planner.repo",),
    "tutor": ("services.tutor.repo",),
    "quiz": ("services.quiz.repo",),
    "autopilot": ("services.autopilot.repo",),
    "gateway": ("services.gateway.repo",),
    # The delivery core: requests, their progress, the inbox, the outbox, dead letters and
    # model usage are written in the command's own transaction by the kit, for every service.
    "pipeline": ("exammentor.messaging.pipeline", "exammentor.messaging.outbox"),
    # Study sessions are every service's: the gateway starts and saves them, the planner,
    # quiz and autopilot check them and append to their audit log, all through one module.
    "sessions": ("exammentor.sessions",),
    "operations": ("exammentor.ops.maintenance", "exammentor.ops.migrate"),
}
"""The modules that may write an owner's tables."""

TABLES: dict[str, Owner] = {
    "users": "gateway",
    "study_sessions": "sessions",
    "study_plans": "planner",
    "plan_cache": "planner",
    "tutor_chats": "tutor",
    "tutor_materials": "tutor",
    "tutor_passages": "tutor",
    "tutor_answers": "tutor",
    # The original's tables the quiz keeps in step with its learner model.
    "topics": "quiz",
    "misconceptions": "quiz",
    "quizzes": "quiz",
    "quiz_questions": "quiz",
    "quiz_answers": "quiz",
    "learner_concepts": "quiz",
    "learner_topics": "quiz",
    "learner_params": "quiz",
    "misconception_records": "quiz",
    "autopilot_runs": "autopilot",
    "autopilot_steps": "autopilot",
    "autopilot_leases": "autopilot",
    "requests": "pipeline",
    "request_events": "pipeline",
    "inbox": "pipeline",
    "outbox": "pipeline",
    "dead_letters": "pipeline",
    "llm_usage": "pipeline",
    "maintenance": "operations",
    "schema_migrations": "operations",
}
"""Every table and its owner."""


@dataclass(frozen=True)
class ForeignRead:
    """A read of another owner's tables, declared with its reason.

    Attributes:
        reader: The reading module, or a package for all of its modules
            (``services.gateway``).
        owner: Whose tables it reads.
        tables: The tables read.
        via: The module whose SQL reads them: the reader itself, or the owner's read model
            (``exammentor.read_models.<owner>``).
        functions: The read model's functions the reader calls (empty when ``via`` is the
            reader's own SQL).
        reason: Why the reader needs another owner's data.
    """

    reader: str
    owner: Owner
    tables: tuple[str, ...]
    via: str
    functions: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ForeignWrite:
    """A write of another owner's tables outside its writer modules (operator jobs only).

    Attributes:
        writer: The writing module.
        tables: The tables it writes.
        reason: Why it may.
    """

    writer: str
    tables: tuple[str, ...]
    reason: str


FOREIGN_READS: tuple[ForeignRead, ...] = (
    ForeignRead(
        reader="exammentor.ops.backup",
        owner="operations",
        tables=("schema_migrations",),
        via="exammentor.ops.backup",
        functions=(),
        reason="a backup's manifest records the migrations applied, so a restore refuses a "
        "different history",
    ),
    ForeignRead(
        reader="services.quiz.repo",
        owner="tutor",
        tables=("tutor_passages",),
        via="services.quiz.repo",
        functions=(),
        reason="a quiz on the student's stored material is built from its pages "
        "(material_pages); read-only, under the student's row-level security",
    ),
    ForeignRead(
        reader="services.autopilot.driver",
        owner="quiz",
        tables=("learner_topics", "misconception_records"),
        via="exammentor.read_models.quiz",
        functions=("learner_snapshot",),
        reason="the autopilot picks the next topic by mastery, review due dates and open "
        "misconceptions, which the quiz's learner model keeps; it changes them only through "
        "quiz commands",
    ),
    ForeignRead(
        reader="services.gateway",
        owner="planner",
        tables=("study_plans",),
        via="exammentor.read_models.planner",
        functions=("stored_plan", "plan_summaries"),
        reason="the client API shows the student's stored plans",
    ),
    ForeignRead(
        reader="services.gateway",
        owner="tutor",
        tables=("tutor_chats", "tutor_materials", "tutor_passages"),
        via="exammentor.read_models.tutor",
        functions=("tutor_chat", "tutor_materials"),
        reason="the client API shows a topic's chat and the student's material list",
    ),
    ForeignRead(
        reader="services.gateway",
        owner="quiz",
        tables=(
            "learner_concepts",
            "learner_topics",
            "misconception_records",
            "quizzes",
            "quiz_answers",
        ),
        via="exammentor.read_models.quiz",
        functions=("learner_mastery", "misconception_views", "saved_quiz"),
        reason="the client API shows mastery with its evidence, misconception records and "
        "the saved quiz of a topic",
    ),
    ForeignRead(
        reader="services.gateway",
        owner="autopilot",
        tables=("autopilot_runs", "autopilot_steps"),
        via="exammentor.read_models.autopilot",
        functions=("autopilot_status", "autopilot_watch"),
        reason="the client API shows a run's status and its watch stream, whichever replica "
        "drives the run",
    ),
)
"""Every read of a table outside its owner's files."""

FOREIGN_WRITES: tuple[ForeignWrite, ...] = (
    ForeignWrite(
        writer="exammentor.ops.retention",
        tables=("inbox", "outbox", "request_events", "llm_usage", "plan_cache"),
        reason="the operator's retention job (exammentor retention run) deletes old rows in "
        "batches, by the ages of its rules; no service does",
    ),
)
"""Every write of a table outside its owner's writer modules."""
