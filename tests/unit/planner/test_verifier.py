"""The exact verifier: a planted defect is reported, exactly, and nothing else is."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exammentor.contracts.plan import (
    DailyPlan,
    PlanVerification,
    PrerequisiteViolation,
    StudyPlan,
    Topic,
)
from services.planner.domain import (
    ScheduleResult,
    SyllabusTopic,
    first_learning_days,
    normalise_topic_name,
    verify_plan,
)
from tests.unit.planner.strategies import ScheduleInput, fitting_inputs, restate_hours

DEFECT_SETTINGS = settings(max_examples=60, deadline=None)


def computed(case: ScheduleInput) -> ScheduleResult:
    return case.schedule()


def assert_only(
    verification: PlanVerification,
    *,
    missing: list[str] | None = None,
    overloaded: list[int] | None = None,
    violations: list[PrerequisiteViolation] | None = None,
    revision: bool = True,
) -> None:
    """The verification reports exactly these defects and no other."""
    assert verification.missing_topics == (missing or [])
    assert verification.overloaded_days == (overloaded or [])
    assert verification.prerequisite_violations == (violations or [])
    assert len(verification.prerequisite_issues) == len(violations or [])
    assert verification.revision_present is revision
    assert verification.is_valid is False
    assert verification.extra_topics == []


@DEFECT_SETTINGS
@given(fitting_inputs(), st.data())
def test_a_dropped_topic_is_reported_as_missing_and_nothing_else(
    case: ScheduleInput, data: st.DataObject
) -> None:
    result = computed(case)
    victim = data.draw(st.sampled_from(result.topics))
    plan = result.plan.model_copy(deep=True)
    for day in plan.schedule:
        day.topics = [t for t in day.topics if not (t.kind == "learn" and t.name == victim.name)]
    verification = verify_plan(restate_hours(plan), result.topics, hours_per_day=case.hours_per_day)
    assert_only(verification, missing=[victim.name])
    total = len(result.topics)
    assert verification.coverage_percent == math.floor((total - 1) / total * 1000) / 10
    assert verification.scheduled_topics_count == total - 1
    assert f"no learning session: {victim.name}." in verification.critique


@DEFECT_SETTINGS
@given(fitting_inputs(), st.data())
def test_an_overloaded_day_is_reported_and_nothing_else(
    case: ScheduleInput, data: st.DataObject
) -> None:
    result = computed(case)
    plan = result.plan.model_copy(deep=True)
    busy = [day for day in plan.schedule if day.topics]
    day = data.draw(st.sampled_from(busy))
    extra = case.hours_per_day - day.estimated_hours + data.draw(st.sampled_from([0.25, 1, 5]))
    day.topics[0].hours = (day.topics[0].hours or 0) + extra
    verification = verify_plan(restate_hours(plan), result.topics, hours_per_day=case.hours_per_day)
    assert_only(verification, overloaded=[day.day])
    assert f"day {day.day} (" in verification.critique


@DEFECT_SETTINGS
@given(fitting_inputs(), st.data())
def test_a_reversed_prerequisite_is_reported_and_nothing_else(
    case: ScheduleInput, data: st.DataObject
) -> None:
    result = computed(case)
    first = first_learning_days(result.plan)

    def start(t: SyllabusTopic) -> int:
        return first[normalise_topic_name(t.name)]

    by_key = {normalise_topic_name(t.name): t for t in result.topics}
    # Prefer reversing a real prerequisite link; any pair that starts on different days will
    # do when the syllabus has none.
    links = [
        (t, by_key[normalise_topic_name(p)])
        for t in result.topics
        for p in t.prerequisites
        if start(by_key[normalise_topic_name(p)]) < start(t)
    ]
    pairs = links or [(b, a) for a in result.topics for b in result.topics if start(a) < start(b)]
    assume(pairs)
    dependent, basis = data.draw(st.sampled_from(pairs))
    reversed_topics = []
    for original in result.topics:
        changed = original
        if original.name == dependent.name:
            kept = tuple(p for p in original.prerequisites if p != basis.name)
            changed = original.model_copy(update={"prerequisites": kept})
        if original.name == basis.name:
            added = (*original.prerequisites, dependent.name)
            changed = original.model_copy(update={"prerequisites": added})
        reversed_topics.append(changed)
    verification = verify_plan(result.plan, reversed_topics, hours_per_day=case.hours_per_day)
    expected = PrerequisiteViolation(
        topic=basis.name,
        prerequisite=dependent.name,
        topic_day=start(basis),
        prerequisite_day=start(dependent),
    )
    assert_only(verification, violations=[expected])
    assert verification.coverage_percent == 100.0


@DEFECT_SETTINGS
@given(fitting_inputs())
def test_a_plan_without_revision_is_reported_and_nothing_else(case: ScheduleInput) -> None:
    result = computed(case)
    plan = result.plan.model_copy(deep=True)
    for day in plan.schedule:
        day.topics = [t for t in day.topics if t.kind != "revision"]
        if day.day_type == "revision":
            day.day_type = "study"
    verification = verify_plan(restate_hours(plan), result.topics, hours_per_day=case.hours_per_day)
    assert_only(verification, revision=False)
    assert "No revision" in verification.critique
    relaxed = verify_plan(
        plan, result.topics, hours_per_day=case.hours_per_day, require_revision=False
    )
    assert relaxed.is_valid


def session(name: str, hours: float | None = 2.0, kind: str = "learn") -> Topic:
    return Topic.model_validate(
        {"name": name, "difficulty": "medium", "rationale": "", "hours": hours, "kind": kind}
    )


def day(number: int, *topics: Topic, estimated: float | None = None) -> DailyPlan:
    hours = sum(t.hours or 0 for t in topics) if estimated is None else estimated
    return DailyPlan(day=number, theme="", topics=list(topics), estimated_hours=hours)


def plan_of(*days: DailyPlan) -> StudyPlan:
    return StudyPlan(
        exam_name="NEET", total_days=len(days), overview="", schedule=list(days), critical_topics=[]
    )


def required(*names: str, **requires: str) -> list[SyllabusTopic]:
    return [
        SyllabusTopic(name=name, prerequisites=(requires[name],) if name in requires else ())
        for name in names
    ]


def test_names_match_after_normalisation() -> None:
    plan = plan_of(
        day(1, session("WORK, ENERGY & POWER"), session("Newtons laws of motion")),
        day(2, session("Kinematics", kind="revision")),
    )
    verification = verify_plan(plan, required("Work, Energy and Power", "Newton's Laws of Motion"))
    assert verification.is_valid
    assert verification.coverage_percent == 100.0
    assert verification.critique.startswith("All 2 required topics are scheduled")


def test_a_topic_only_reviewed_or_revised_is_not_covered() -> None:
    plan = plan_of(
        day(1, session("Optics")),
        day(2, session("Kinematics", kind="review"), session("Optics", kind="revision")),
    )
    verification = verify_plan(plan, required("Optics", "Kinematics"))
    assert verification.missing_topics == ["Kinematics"]
    assert verification.coverage_percent == 50.0


def test_coverage_is_floored_so_a_gap_never_reads_as_complete() -> None:
    names = [f"Topic {i}" for i in range(3000)]
    plan = plan_of(
        day(1, *(session(n, 0.001) for n in names[:-1])), day(2, session("X", 0, "revision"))
    )
    verification = verify_plan(plan, required(*names))
    assert verification.coverage_percent == 99.9
    assert verification.missing_topics == ["Topic 2999"]


def test_a_day_is_overloaded_by_its_stated_total_or_its_sessions() -> None:
    plan = plan_of(
        day(1, session("A", 3), estimated=9),  # stated total over the cap
        day(2, session("B", 5), session("C", 4), estimated=6),  # sessions over the cap
        day(
            3,
            session("D", None),
            estimated=8,
        ),  # original-shaped: no session hours
        day(4, session("E", 1, "revision")),
    )
    verification = verify_plan(plan, required("A", "B", "C", "D"), hours_per_day=8)
    assert verification.overloaded_days == [1, 2]
    assert "Over the 8 h daily cap: day 1 (9 h), day 2 (9 h)." in verification.critique


def test_a_missing_prerequisite_is_reported_once_as_missing() -> None:
    plan = plan_of(day(1, session("Laws of Motion")), day(2, session("R", 1, "revision")))
    verification = verify_plan(
        plan, required("Kinematics", "Laws of Motion", **{"Laws of Motion": "Kinematics"})
    )
    assert verification.missing_topics == ["Kinematics"]
    assert verification.prerequisite_violations == []


def test_same_day_prerequisites_are_allowed_and_earlier_ones_are_not() -> None:
    topics = required("Kinematics", "Laws of Motion", **{"Laws of Motion": "Kinematics"})
    same_day = plan_of(
        day(1, session("Kinematics"), session("Laws of Motion")),
        day(2, session("R", 1, "revision")),
    )
    assert verify_plan(same_day, topics).is_valid
    backwards = plan_of(
        day(1, session("Laws of Motion")),
        day(2, session("Kinematics"), session("R", 1, "revision")),
    )
    verification = verify_plan(backwards, topics)
    assert verification.prerequisite_issues == [
        "'Laws of Motion' starts on day 1 but its prerequisite 'Kinematics' starts on day 2"
    ]
    assert "Prerequisites out of order" in verification.critique


def test_all_defects_at_once_are_all_in_the_critique() -> None:
    plan = plan_of(
        day(1, session("Laws of Motion", 10)), day(2, session("Kinematics"), session("Extra"))
    )
    verification = verify_plan(
        plan,
        required("Kinematics", "Laws of Motion", "Optics", **{"Laws of Motion": "Kinematics"}),
        hours_per_day=8,
    )
    assert not verification.is_valid
    assert verification.missing_topics == ["Optics"]
    assert verification.overloaded_days == [1]
    assert len(verification.prerequisite_issues) == 1
    assert verification.revision_present is False
    assert verification.extra_topics == ["Extra"]
    critique = verification.critique
    assert critique.index("Optics") < critique.index("Over the") < critique.index("Prerequisites")
    assert critique.endswith("before the exam.")
    assert verification.hours_cap == 8
    assert verification.required_topics_count == 3
    assert verification.scheduled_topics_count == 2
