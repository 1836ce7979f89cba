"""Diffs between plan versions: topics added, removed, moved, and hours changed."""

from __future__ import annotations

from hypothesis import given, settings

from exammentor.contracts.plan import DailyPlan, DayHoursChange, StudyPlan, Topic, TopicMove
from services.planner.domain import diff_plans
from tests.unit.planner.strategies import ScheduleInput, fitting_inputs


def session(name: str, hours: float = 2.0, kind: str = "learn") -> Topic:
    return Topic.model_validate(
        {"name": name, "difficulty": "easy", "rationale": "", "hours": hours, "kind": kind}
    )


def plan_of(*days: list[Topic]) -> StudyPlan:
    return StudyPlan(
        exam_name="JEE",
        total_days=len(days),
        overview="",
        schedule=[
            DailyPlan(
                day=i, theme="", topics=topics, estimated_hours=sum(t.hours or 0 for t in topics)
            )
            for i, topics in enumerate(days, start=1)
        ],
        critical_topics=[],
    )


def test_identical_plans_have_an_empty_diff() -> None:
    plan = plan_of([session("Kinematics")], [session("Optics")])
    diff = diff_plans(plan, plan.model_copy(deep=True))
    assert diff.is_empty


def test_added_removed_moved_and_hours() -> None:
    before = plan_of(
        [session("Kinematics"), session("Laws of Motion")],
        [session("Optics", 3)],
        [session("Waves"), session("Kinematics", 0.25, "review")],
    )
    after = plan_of(
        [session("Kinematics")],
        [session("Optics", 3), session("LAWS OF MOTION")],
        [session("Electrostatics", 1)],
        [session("Revision", 1, "revision")],
    )
    diff = diff_plans(before, after)
    assert diff.topics_added == ["Electrostatics"]
    assert diff.topics_removed == ["Waves"]
    assert diff.topics_moved == [TopicMove(topic="LAWS OF MOTION", from_days=[1], to_days=[2])]
    assert diff.hours_changed == [
        DayHoursChange(day=1, hours_before=4, hours_after=2),
        DayHoursChange(day=2, hours_before=3, hours_after=5),
        DayHoursChange(day=3, hours_before=2.25, hours_after=1),
        DayHoursChange(day=4, hours_before=0, hours_after=1),
    ]
    assert not diff.is_empty


def test_a_topic_split_differently_counts_as_moved() -> None:
    before = plan_of([session("Calculus", 4)], [session("Calculus", 4)])
    after = plan_of([session("Calculus", 8)], [])
    diff = diff_plans(before, after)
    assert diff.topics_moved == [TopicMove(topic="Calculus", from_days=[1, 2], to_days=[1])]


@settings(max_examples=40, deadline=None)
@given(fitting_inputs())
def test_diff_of_a_plan_and_its_reverse_swaps_added_and_removed(case: ScheduleInput) -> None:
    plan = case.schedule().plan
    shorter = plan.model_copy(deep=True)
    shorter.schedule = shorter.schedule[:-1]
    forward, backward = diff_plans(plan, shorter), diff_plans(shorter, plan)
    assert forward.topics_added == backward.topics_removed
    assert forward.topics_removed == backward.topics_added
    assert [(c.day, c.hours_before, c.hours_after) for c in forward.hours_changed] == [
        (c.day, c.hours_after, c.hours_before) for c in backward.hours_changed
    ]
    assert diff_plans(plan, plan).is_empty
