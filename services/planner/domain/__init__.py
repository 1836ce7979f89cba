"""The planner's pure domain logic: registry, syllabus parsing, routing, the goal's focus,
topic resolution,
scheduling, verification, plan revisions, diff and the plan cache key.

No I/O beyond reading the registry's TOML files, no model calls, no database: everything
here is deterministic and tested without a model, Kafka or Postgres (``tests/unit/planner``
and ``tests/unit/test_planner_service.py``).
"""

from services.planner.domain.cache_key import (
    PIPELINE_VERSION,
    plan_cache_key,
    plan_fingerprint,
    registry_digest,
)
from services.planner.domain.diff import diff_plans
from services.planner.domain.errors import (
    CapacityError,
    DuplicateTopicError,
    EmptySyllabusError,
    NoStudyDaysError,
    PlanningError,
    PrerequisiteCycleError,
    RegistryError,
    UnknownScopeError,
)
from services.planner.domain.focus import GoalFocus, read_focus
from services.planner.domain.names import mentions, normalise_topic_name, padded_phrase
from services.planner.domain.registry import (
    BUILTIN_SYLLABI_DIR,
    ExamSyllabus,
    RegistryTopic,
    Scope,
    SubjectSyllabus,
    SubSubjectSyllabus,
    SyllabusRegistry,
    build_registry,
    load_registry,
)
from services.planner.domain.resolution import (
    ResolvedTopics,
    fit_estimates,
    registry_syllabus,
    resolve_topics,
)
from services.planner.domain.revisions import (
    PlannedStudy,
    ProposedMove,
    apply_moves,
    apply_prose,
    choose_final,
    learning_days,
    plan_lines,
    theme_listing,
    wished_topics,
    with_left_out,
)
from services.planner.domain.routing import (
    OWN_SYLLABUS,
    Clarification,
    Routing,
    cross_check,
    exams_mentioned,
    foreign_subjects,
    scopes_mentioned,
)
from services.planner.domain.scheduler import (
    DEFAULT_POLICY,
    CapacityReport,
    SchedulePolicy,
    ScheduleResult,
    learning_order,
    schedule_plan,
)
from services.planner.domain.syllabus import (
    ParsedTopic,
    enrich_topics,
    parse_syllabus,
    planned_names,
    planned_topic_name,
    topics_from_registry,
)
from services.planner.domain.topics import SyllabusTopic
from services.planner.domain.verifier import day_hours, first_learning_days, verify_plan

__all__ = [
    "BUILTIN_SYLLABI_DIR",
    "DEFAULT_POLICY",
    "OWN_SYLLABUS",
    "PIPELINE_VERSION",
    "CapacityError",
    "CapacityReport",
    "Clarification",
    "DuplicateTopicError",
    "EmptySyllabusError",
    "ExamSyllabus",
    "GoalFocus",
    "NoStudyDaysError",
    "ParsedTopic",
    "PlannedStudy",
    "PlanningError",
    "PrerequisiteCycleError",
    "ProposedMove",
    "RegistryError",
    "RegistryTopic",
    "ResolvedTopics",
    "Routing",
    "SchedulePolicy",
    "ScheduleResult",
    "Scope",
    "SubSubjectSyllabus",
    "SubjectSyllabus",
    "SyllabusRegistry",
    "SyllabusTopic",
    "UnknownScopeError",
    "apply_moves",
    "apply_prose",
    "build_registry",
    "choose_final",
    "cross_check",
    "day_hours",
    "diff_plans",
    "enrich_topics",
    "exams_mentioned",
    "first_learning_days",
    "fit_estimates",
    "foreign_subjects",
    "learning_days",
    "learning_order",
    "load_registry",
    "mentions",
    "normalise_topic_name",
    "padded_phrase",
    "parse_syllabus",
    "plan_cache_key",
    "plan_fingerprint",
    "plan_lines",
    "planned_names",
    "planned_topic_name",
    "read_focus",
    "registry_digest",
    "registry_syllabus",
    "resolve_topics",
    "schedule_plan",
    "scopes_mentioned",
    "theme_listing",
    "topics_from_registry",
    "verify_plan",
    "wished_topics",
    "with_left_out",
]
