"""The planner's pure domain logic: registry, syllabus parsing, scheduling, verification, diff.

No I/O beyond reading the registry's TOML files, no model calls, no database: everything
here is deterministic and tested exhaustively in ``tests/unit/planner``.
"""

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
from services.planner.domain.names import normalise_topic_name
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
    narrow_to_scope,
    parse_syllabus,
    topics_from_registry,
)
from services.planner.domain.topics import SyllabusTopic
from services.planner.domain.verifier import day_hours, first_learning_days, verify_plan

__all__ = [
    "BUILTIN_SYLLABI_DIR",
    "DEFAULT_POLICY",
    "CapacityError",
    "CapacityReport",
    "DuplicateTopicError",
    "EmptySyllabusError",
    "ExamSyllabus",
    "NoStudyDaysError",
    "ParsedTopic",
    "PlanningError",
    "PrerequisiteCycleError",
    "RegistryError",
    "RegistryTopic",
    "SchedulePolicy",
    "ScheduleResult",
    "Scope",
    "SubSubjectSyllabus",
    "SubjectSyllabus",
    "SyllabusRegistry",
    "SyllabusTopic",
    "UnknownScopeError",
    "build_registry",
    "day_hours",
    "diff_plans",
    "enrich_topics",
    "first_learning_days",
    "learning_order",
    "load_registry",
    "narrow_to_scope",
    "normalise_topic_name",
    "parse_syllabus",
    "schedule_plan",
    "topics_from_registry",
    "verify_plan",
]
