"""The deterministic scheduler: properties over any valid input, then concrete cases."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from services.planner.domain import (
    CapacityError,
    DuplicateTopicError,
    EmptySyllabusError,
    NoStudyDaysError,
    PlanningError,
    PrerequisiteCycleError,
    SchedulePolicy,
    ScheduleResult,
    SyllabusTopic,
    day_hours,
    learning_order,
    normalise_topic_name,
    schedule_plan,
    verify_plan,
)
from tests.unit.planner.strategies import (
    START,
    ScheduleInput,
    learn_days,
    learn_hours,
    quarter_hours,
    schedule_inputs,
    syllabi,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


def topic(name: str, hours: float = 2.0, weight: float = 1.0, *requires: str) -> SyllabusTopic:
    return SyllabusTopic(name=name, hours=hours, weight=weight, prerequisites=requires)


def attempt(case: ScheduleInput) -> ScheduleResult | PlanningError:
    try:
        return case.schedule()
    except PlanningError as error:
        return error


def check_refusal(case: ScheduleInput, error: CapacityError) -> None:
    # Refused only when the numbers really do not fit, and the numbers are the real ones.
    assert error.needed_hours > error.available_hours
    assert error.needed_hours == sum(quarter_hours(t.hours) for t in case.topics)
    if case.overflow == "drop":
        # Not even one topic that needs nothing else fits.
        names = {normalise_topic_name(t.name) for t in case.topics}
        roots = [
            t
            for t in case.topics
            if not any(normalise_topic_name(p) in names for p in t.prerequisites)
        ]
        assert all(quarter_hours(t.hours) > error.available_hours for t in roots)
    if error.min_days_needed is not None:
        assert case.schedule(days=error.min_days_needed).dropped == ()


def check_no_study_days(case: ScheduleInput) -> None:
    window = case.days
    if case.exam_date is not None:
        window = min(window, (case.exam_date - START).days)
    assert all(START + dt.timedelta(days=d) in case.days_off for d in range(window))


@PROPERTY_SETTINGS
@given(schedule_inputs())
def test_any_valid_input_gives_a_plan_that_keeps_every_rule(case: ScheduleInput) -> None:
    result = attempt(case)
    if isinstance(result, CapacityError):
        event("refused")
        check_refusal(case, result)
        return
    if isinstance(result, NoStudyDaysError):
        event("no study days")
        check_no_study_days(case)
        return
    assert isinstance(result, ScheduleResult), result
    event("planned, some dropped" if result.dropped else "planned")
    plan = result.plan
    cap = case.hours_per_day
    kept = {normalise_topic_name(t.name) for t in result.topics}
    dropped = {normalise_topic_name(t.name) for t in result.dropped}

    # Every topic appears (or, when the request allowed it, is listed as dropped).
    assert kept | dropped == {normalise_topic_name(t.name) for t in case.topics}
    assert not kept & dropped
    assert set(learn_days(plan)) == kept
    if case.overflow == "refuse":
        assert not dropped
    # ... with exactly its hours of learning, rounded up to a quarter hour.
    hours = learn_hours(plan)
    for t in result.topics:
        assert hours[normalise_topic_name(t.name)] == quarter_hours(t.hours)

    # No day over the cap; stated totals equal the sessions' sum; days off are empty.
    for day in plan.schedule:
        assert day_hours(day) <= cap
        assert day.estimated_hours == sum(t.hours or 0 for t in day.topics)
        assert day.date == START + dt.timedelta(days=day.day - 1)
        if day.date in case.days_off:
            assert day.day_type == "off"
            assert not day.topics
    assert [day.day for day in plan.schedule] == list(range(1, plan.total_days + 1))
    if case.exam_date is not None:
        assert all(day.date is not None and day.date < case.exam_date for day in plan.schedule)

    # Prerequisites are finished before what builds on them starts.
    days = learn_days(plan)
    for t in result.topics:
        for name in t.prerequisites:
            basis = normalise_topic_name(name)
            if basis in kept:
                assert max(days[basis]) <= min(days[normalise_topic_name(t.name)])
            # A prerequisite of a kept topic is never the one dropped.
            assert basis not in dropped

    # Revision is there; 3 to 5 critical topics, the heaviest.
    assert any(t.kind == "revision" for day in plan.schedule for t in day.topics)
    assert len(plan.critical_topics) == min(len(kept), max(3, min(5, len(kept) // 4)))
    weights = {t.name: t.weight for t in result.topics}
    lightest_critical = min(weights[name] for name in plan.critical_topics)
    assert all(w <= lightest_critical for n, w in weights.items() if n not in plan.critical_topics)

    # The exact verifier agrees, and the same input gives the same plan.
    verification = verify_plan(plan, result.topics, hours_per_day=cap)
    assert verification.is_valid, verification.critique
    assert verification.coverage_percent == 100.0
    again = case.schedule()
    assert again.model_dump() == result.model_dump()


@settings(max_examples=40, deadline=None)
@given(schedule_inputs())
def test_output_depends_on_the_input_not_on_object_identity(case: ScheduleInput) -> None:
    rebuilt = dataclasses.replace(
        case, topics=[SyllabusTopic.model_validate(t.model_dump()) for t in case.topics]
    )
    first = attempt(case)
    second = attempt(rebuilt)
    if isinstance(first, PlanningError):
        assert type(second) is type(first)
        assert str(second) == str(first)
    else:
        assert isinstance(second, ScheduleResult)
        assert second.model_dump() == first.model_dump()


def most_learning_hours(days: int, hours_per_day: float) -> float:
    """The most learning a calendar can hold, read from a refusal."""
    with pytest.raises(CapacityError) as caught:
        schedule_plan([topic("Everything", 10_000)], days=days, hours_per_day=hours_per_day)
    return caught.value.available_hours


@settings(max_examples=100, deadline=None)
@given(syllabi(max_hours_units=64), st.integers(1, 20), st.integers(4, 40))
def test_drop_keeps_what_fits_and_never_strands_a_topic(
    topics: list[SyllabusTopic], days: int, cap_units: int
) -> None:
    cap = cap_units / 4
    result = attempt(ScheduleInput(topics=topics, days=days, hours_per_day=cap, overflow="drop"))
    if isinstance(result, CapacityError):
        event("nothing fits")
        return
    assert isinstance(result, ScheduleResult)
    event("dropped" if result.dropped else "all fit")
    capacity = most_learning_hours(days, cap)
    kept = {normalise_topic_name(t.name) for t in result.topics}
    dropped = {normalise_topic_name(t.name): t for t in result.dropped}
    assert kept | set(dropped) == {normalise_topic_name(t.name) for t in topics}
    kept_hours = sum(quarter_hours(t.hours) for t in result.topics)
    assert kept_hours <= capacity
    assert result.capacity.scheduled_hours == kept_hours
    for t in topics:
        key = normalise_topic_name(t.name)
        needs = {normalise_topic_name(p) for p in t.prerequisites}
        if key in kept:
            assert not needs & set(dropped)  # a kept topic keeps its prerequisites
        else:
            # Nothing dropped could have been kept: too big, or it needs a dropped topic.
            assert kept_hours + dropped[key].hours > capacity or needs & set(dropped)


def test_prerequisites_come_first_and_weight_breaks_ties() -> None:
    topics = [
        topic("Optics", 2, 9),
        topic("Laws of Motion", 2, 6, "Kinematics"),
        topic("Kinematics", 2, 2),
        topic("Gravitation", 2, 6),
    ]
    order = [topics[i].name for i in learning_order(topics)]
    # Kinematics is light but Laws of Motion (weight 6) needs it, so it ranks as 6;
    # among equals the syllabus order decides.
    assert order == ["Optics", "Kinematics", "Laws of Motion", "Gravitation"]


def test_a_light_syllabus_is_spread_over_the_whole_window() -> None:
    topics = [topic(f"Topic {i}", 2) for i in range(6)]
    plan = schedule_plan(topics, days=14, hours_per_day=8).plan
    learning = [d for d in plan.schedule if any(t.kind == "learn" for t in d.topics)]
    assert len(learning) >= 9  # not crammed into the first two days
    assert max(d.estimated_hours for d in plan.schedule if d.day_type == "study") <= 2.5


def test_long_topics_are_split_across_days_with_parts() -> None:
    plan = schedule_plan([topic("Organic Chemistry", 20)], days=10, hours_per_day=4).plan
    sessions = [t for d in plan.schedule for t in d.topics if t.kind == "learn"]
    assert len(sessions) > 1
    assert [t.part for t in sessions] == list(range(1, len(sessions) + 1))
    assert {t.parts for t in sessions} == {len(sessions)}
    assert sum(t.hours or 0 for t in sessions) == 20
    assert all((t.hours or 0) >= 0.5 for t in sessions)


def test_revision_days_before_the_exam_and_weekly() -> None:
    topics = [topic(f"Topic {i}", 3, i + 1) for i in range(10)]
    result = schedule_plan(
        topics, days=60, hours_per_day=6, start_date=START, exam_date=START + dt.timedelta(days=21)
    )
    plan = result.plan
    assert plan.total_days == 21  # the plan stops the day before the exam
    types = [d.day_type for d in plan.schedule]
    assert types[-2:] == ["revision", "revision"]  # 21 study days -> 2 final revision days
    assert types[6] == "revision"
    assert types[13] == "revision"
    assert plan.schedule[-1].theme == "Final revision before the exam"
    final = [t for d in plan.schedule[-2:] for t in d.topics]
    assert {normalise_topic_name(t.name) for t in final} == {
        normalise_topic_name(t.name) for t in topics
    }
    # Critical topics are revised last, closest to the exam.
    assert final[-1].name in plan.critical_topics
    weekly = plan.schedule[6].topics
    assert weekly
    assert all(t.kind == "revision" for t in weekly)


def test_short_plans_end_with_a_recap_instead_of_a_revision_day() -> None:
    plan = schedule_plan([topic("A", 2, 5), topic("B", 2, 1)], days=2, hours_per_day=8).plan
    assert [d.day_type for d in plan.schedule] == ["study", "study"]
    recap = [t for t in plan.schedule[-1].topics if t.kind == "revision"]
    assert [t.name for t in recap] == ["A", "B"]
    assert plan.schedule[-1].theme == "B; then a recap"


def test_spaced_reviews_follow_a_topic_after_one_three_and_seven_days() -> None:
    topics = [topic("Kinematics", 2, 5), *(topic(f"Filler {i}", 2) for i in range(9))]
    plan = schedule_plan(topics, days=30, hours_per_day=8, start_date=START).plan
    learned = max(learn_days(plan)["kinematics"])
    reviews = [
        d.day
        for d in plan.schedule
        for t in d.topics
        if t.kind == "review" and t.name == "Kinematics"
    ]
    assert reviews == [learned + 1, learned + 3, learned + 7]
    review = next(t for d in plan.schedule for t in d.topics if t.kind == "review")
    assert review.hours == 0.25
    assert review.rationale.startswith("Spaced review")


def test_days_off_hold_nothing_and_push_work_later() -> None:
    off = [START + dt.timedelta(days=1), START + dt.timedelta(days=2)]
    plan = schedule_plan(
        [topic("A", 4), topic("B", 4)], days=6, hours_per_day=4, start_date=START, days_off=off
    ).plan
    assert [d.day_type for d in plan.schedule][:3] == ["study", "off", "off"]
    assert plan.schedule[1].topics == []
    assert plan.schedule[1].theme == "Day off"
    assert "2 days off" in plan.overview


def test_capacity_refused_with_the_numbers() -> None:
    topics = [topic(f"Topic {i}", 10, i + 1) for i in range(6)]  # 60 h
    with pytest.raises(CapacityError) as caught:
        schedule_plan(topics, days=5, hours_per_day=8)
    error = caught.value
    assert error.needed_hours == 60
    # 5 study days: 1 final revision day, 4 learning days of 8 h.
    assert error.available_hours == 32
    assert error.revision_reserve_hours == 8
    assert error.study_days == 5
    assert error.min_days_needed == 9
    assert "needs 60 h" in str(error)
    assert "32 h" in str(error)
    assert schedule_plan(topics, days=9, hours_per_day=8).dropped == ()
    with pytest.raises(CapacityError, match="not even one topic fits"):
        schedule_plan([topic("Huge", 100)], days=2, overflow="drop")


def test_capacity_drop_leaves_out_the_least_important_and_says_so() -> None:
    topics = [
        topic("Mechanics", 12, 9),
        topic("Units", 4, 1),  # light, but Waves (weight 8) builds on it
        topic("Waves", 12, 8, "Units"),
        topic("History of Physics", 8, 2),
        topic("Trivia", 8, 1),
    ]
    result = schedule_plan(topics, days=5, hours_per_day=8, overflow="drop")
    assert [t.name for t in result.dropped] == ["History of Physics", "Trivia"]
    assert result.plan.dropped_topics == list(result.dropped)
    assert "Left out for lack of time: History of Physics and Trivia" in result.plan.overview
    assert result.capacity.needed_hours == 44
    assert result.capacity.scheduled_hours == 28
    assert set(learn_days(result.plan)) == {"mechanics", "units", "waves"}
    assert "ranks lowest by weight" in result.dropped[0].reason


def test_giving_up_reviews_and_weekly_revision_before_refusing() -> None:
    # 10 study days of 8 h: day 7 weekly revision, day 10 final revision, 8 learning days
    # of 7 h (1 h kept for reviews) = 56 h; without the reserve 64 h; with day 7 too 72 h.
    def plan(hours: float) -> tuple[tuple[str, ...], int]:
        topics = [topic(f"Topic {i}", hours) for i in range(8)]
        result = schedule_plan(topics, days=10, hours_per_day=8)
        return result.capacity.adjustments, result.capacity.revision_days

    no_reserve = "no time reserved for spaced reviews; they go where a day has room left"
    assert plan(7) == ((), 2)
    assert plan(7.25) == ((no_reserve,), 2)
    assert plan(8.25) == ((no_reserve, "weekly revision days used for learning"), 1)
    with pytest.raises(CapacityError):
        plan(9.25)


def test_invalid_inputs_are_planning_errors() -> None:
    with pytest.raises(EmptySyllabusError):
        schedule_plan([], days=7)
    with pytest.raises(DuplicateTopicError, match="same topic"):
        schedule_plan([topic("Work, Energy & Power"), topic("work energy and power")], days=7)
    with pytest.raises(PrerequisiteCycleError, match="A -> B -> A"):
        schedule_plan([topic("A", 1, 1, "B"), topic("B", 1, 1, "A")], days=7)
    with pytest.raises(PlanningError, match="days must be between 1 and 365"):
        schedule_plan([topic("A")], days=366)
    with pytest.raises(PlanningError, match="hours_per_day"):
        schedule_plan([topic("A")], days=3, hours_per_day=0.1)
    with pytest.raises(PlanningError, match="start_date"):
        schedule_plan([topic("A")], days=3, days_off=[START])
    with pytest.raises(NoStudyDaysError):
        schedule_plan([topic("A")], days=1, start_date=START, days_off=[START])
    with pytest.raises(NoStudyDaysError):
        schedule_plan([topic("A")], days=5, start_date=START, exam_date=START)


def test_prerequisites_outside_the_syllabus_are_ignored() -> None:
    result = schedule_plan([topic("Organic Chemistry", 2, 1, "Chemical Bonding")], days=3)
    assert [t.name for t in result.topics] == ["Organic Chemistry"]
    assert "builds on" not in result.plan.schedule[0].topics[0].rationale


def test_policy_can_turn_weekly_revision_off() -> None:
    policy = SchedulePolicy(weekly_revision_every=0)
    plan = schedule_plan([topic("A", 3)], days=30, policy=policy).plan
    assert [d.day for d in plan.schedule if d.day_type == "revision"] == [29, 30]


def test_rationale_and_theme_are_written_from_the_numbers() -> None:
    plan = schedule_plan(
        [topic("Electrostatics", 6, 8), topic("Current Electricity", 6, 9, "Electrostatics")],
        days=8,
        hours_per_day=4,
    ).plan
    first = plan.schedule[0]
    assert first.theme == "Electrostatics"
    assert first.topics[0].rationale.startswith("Weight 8 (critical); 6 h in total, part 1 of")
    later = next(t for d in plan.schedule for t in d.topics if t.name == "Current Electricity")
    assert "builds on Electrostatics" in later.rationale
    assert plan.overview.startswith("8-day plan for : ") is False
    assert plan.overview.startswith("8-day plan: 2 topics with 12 h of learning")
