"""Topic choice: properties over generated plans and learner states, then concrete cases."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from exammentor.contracts.autopilot import plan_topic_names, topic_key
from exammentor.contracts.plan import StudyPlan
from services.autopilot.domain import (
    DEFAULT_POLICY,
    PlanTopic,
    PrerequisiteCycleError,
    RunSetupError,
    TopicChoice,
    choose_topic,
    direct_prerequisites,
    study_topics,
)
from tests.unit.autopilot.strategies import (
    NOW,
    learner_states,
    make_plan,
    plans,
    prerequisite_pairs,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)
POLICY = DEFAULT_POLICY


def all_prerequisites(names: list[str], pairs: list[tuple[str, str]] | None) -> dict[str, set[str]]:
    """Transitive prerequisites by fixed-point iteration (independent of the module's)."""
    if pairs is None:
        return {name: set(names[:i]) for i, name in enumerate(names)}
    found: dict[str, set[str]] = {name: set() for name in names}
    for before, after in pairs:
        if before in found and after in found and before != after:
            found[after].add(before)
    changed = True
    while changed:
        changed = False
        for name in names:
            wider = set().union(found[name], *(found[p] for p in found[name]))
            if wider != found[name]:
                found[name], changed = wider, True
    return found


@st.composite
def choice_cases(
    draw: st.DrawFn,
) -> tuple[
    StudyPlan,
    list[str] | None,
    dict[str, float],
    dict[str, dt.datetime],
    list[tuple[str, str]] | None,
    dt.date | None,
]:
    plan = draw(plans())
    names = plan_topic_names(plan)
    focus = draw(st.none() | st.lists(st.sampled_from(names), min_size=1, unique=True))
    mastery, due = draw(learner_states(names))
    pairs = draw(prerequisite_pairs(names))
    exam = draw(st.none() | st.integers(-5, 120).map(lambda d: NOW.date() + dt.timedelta(d)))
    return plan, focus, mastery, due, pairs, exam


def choose(
    topics: list[PlanTopic],
    mastery: dict[str, float],
    due: dict[str, dt.datetime],
    pairs: list[tuple[str, str]] | None,
    exam: dt.date | None,
) -> TopicChoice | None:
    return choose_topic(
        topics, mastery, now=NOW, reviews_due=due, prerequisites=pairs, exam_date=exam
    )


@PROPERTY_SETTINGS
@given(choice_cases())
def test_the_choice_keeps_every_rule(
    case: tuple[
        StudyPlan,
        list[str] | None,
        dict[str, float],
        dict[str, dt.datetime],
        list[tuple[str, str]] | None,
        dt.date | None,
    ],
) -> None:
    plan, focus, mastery, due, pairs, exam = case
    topics = study_topics(plan, focus_topics=focus)
    names = [t.name for t in topics]
    level = {name: mastery.get(name, POLICY.prior_mastery) for name in names}
    closure = all_prerequisites(names, pairs)
    done = {name for name in names if level[name] >= POLICY.mastery_threshold}
    ready = [
        name
        for name in names
        if name not in done and all(level[p] >= POLICY.prerequisite_floor for p in closure[name])
    ]
    choice = choose(topics, mastery, due, pairs, exam)
    event("no choice" if choice is None else choice.rule)
    event("explicit pairs" if pairs is not None else "plan order")

    # Only the plan's topics, and only the focus among them when one is given.
    assert set(names) <= set(plan_topic_names(plan))
    if focus is not None:
        assert set(names) == set(focus)
    if choice is None:
        assert done == set(names)
        return
    assert choice.topic in names
    assert choice.topic not in done
    # Prerequisites first: nothing it builds on, directly or not, is below the floor.
    assert all(level[p] >= POLICY.prerequisite_floor for p in closure[choice.topic])
    assert choice.topic in ready
    # Due reviews first, the longest overdue first.
    due_ready = [(due[n], names.index(n)) for n in ready if n in due and due[n] <= NOW]
    if due_ready:
        assert choice.rule == "review_due"
        assert (due[choice.topic], names.index(choice.topic)) == min(due_ready)
    else:
        assert choice.rule == "greatest_need"
        weight = {t.name: t.weight for t in topics}
        nearness = 0.0
        if exam is not None:
            nearness = min(1.0, max(0.0, 1 - (exam - NOW.date()).days / POLICY.exam_horizon_days))
        need = {n: (1 - level[n]) * weight[n] ** (1 + nearness) for n in ready}
        assert math.isclose(need[choice.topic], max(need.values()))
    # The reason names the numbers.
    assert f"{choice.mastery:.2f}" in choice.reason
    assert f"among {len(names)} plan topics" in choice.reason
    # Deterministic: again, and with the mappings in another order.
    again = choose(
        topics, dict(reversed(mastery.items())), dict(reversed(due.items())), pairs, exam
    )
    assert again == choice


@PROPERTY_SETTINGS
@given(plans(), st.data())
def test_some_topic_is_ready_while_one_is_not_done(plan: StudyPlan, data: st.DataObject) -> None:
    topics = study_topics(plan)
    names = [t.name for t in topics]
    mastery = {name: data.draw(st.floats(0, 0.849)) for name in names}
    pairs = data.draw(prerequisite_pairs(names))
    assert choose(topics, mastery, {}, pairs, None) is not None


def test_plan_order_is_the_prerequisite_order_without_pairs() -> None:
    topics = study_topics(make_plan("Kinematics", "Laws of Motion", "Gravitation"))
    # Gravitation is weakest, but Laws of Motion (0.3) is below the floor, so it goes first.
    choice = choose(topics, {"Kinematics": 0.7, "Laws of Motion": 0.3}, {}, None, None)
    assert choice is not None
    assert choice.topic == "Laws of Motion"
    assert choice.reason == (
        "lowest mastery 0.30 among 3 plan topics; its prerequisite Kinematics is at 0.70; "
        "1 wait for prerequisites"
    )


def test_explicit_pairs_replace_the_plan_order() -> None:
    names = ("Optics", "Electrostatics", "Current Electricity", "Gravitation", "Mole Concept")
    topics = study_topics(make_plan(*names))
    mastery = {
        "Optics": 0.5,
        "Electrostatics": 0.82,
        "Current Electricity": 0.31,
        "Gravitation": 0.5,
        "Mole Concept": 0.5,
    }
    pairs = [("Electrostatics", "Current Electricity")]
    choice = choose(topics, mastery, {}, pairs, None)
    assert choice is not None
    assert choice.reason == (
        "lowest mastery 0.31 among 5 plan topics; its prerequisite Electrostatics is at 0.82"
    )
    # With the prerequisite below the floor, it comes first instead.
    choice = choose(topics, {**mastery, "Electrostatics": 0.4}, {}, pairs, None)
    assert choice is not None
    assert choice.topic == "Electrostatics"


def test_a_due_review_goes_before_a_weaker_topic() -> None:
    topics = study_topics(make_plan("Optics", "Gravitation", "Mole Concept"))
    due = {"Gravitation": NOW - dt.timedelta(days=2), "Mole Concept": NOW + dt.timedelta(days=1)}
    choice = choose(
        topics, {"Optics": 0.7, "Gravitation": 0.75, "Mole Concept": 0.7}, due, [], None
    )
    assert choice is not None
    assert (choice.topic, choice.rule) == ("Gravitation", "review_due")
    assert choice.reason.startswith(
        "review due since 2026-02-28 09:00 UTC, the only due review among 3 plan topics; "
        "mastery 0.75"
    )


def test_a_mastered_topic_is_done_even_with_a_review_due() -> None:
    topics = study_topics(make_plan("Optics", "Gravitation"))
    due = {"Optics": NOW - dt.timedelta(days=1)}
    choice = choose(topics, {"Optics": 0.9, "Gravitation": 0.2}, due, [], None)
    assert choice is not None
    assert choice.topic == "Gravitation"
    assert "1 done at 0.85 or above" in choice.reason
    assert choose(topics, {"Optics": 0.9, "Gravitation": 0.85}, due, [], None) is None


def test_heavy_topics_count_more_as_the_exam_nears() -> None:
    topics = [PlanTopic(name="Light", weight=1.0), PlanTopic(name="Heavy", weight=1.5)]
    mastery = {"Light": 0.2, "Heavy": 0.5}
    far = choose(topics, mastery, {}, [], NOW.date() + dt.timedelta(days=200))
    near = choose(topics, mastery, {}, [], NOW.date() + dt.timedelta(days=1))
    assert far is not None
    assert near is not None
    # Far: 0.8 x 1 beats 0.5 x 1.5; the day before 0.5 x 1.5^1.98 = 1.12 beats 0.8.
    assert (far.topic, near.topic) == ("Light", "Heavy")
    assert near.reason.startswith(
        "greatest need among 2 plan topics: mastery 0.50 at weight 1.5 outranks the lowest "
        "mastery 0.20 (Light, weight 1)"
    )
    assert near.reason.endswith("exam in 1 day (weight power 1.98)")


def test_an_unknown_topic_is_at_the_prior_and_names_match_in_any_case() -> None:
    topics = study_topics(make_plan("Optics", "Gravitation"))
    choice = choose(topics, {"  optics ": 0.95}, {}, [], None)
    assert choice is not None
    assert (choice.topic, choice.mastery) == ("Gravitation", POLICY.prior_mastery)


def test_a_mastery_out_of_range_is_refused() -> None:
    topics = study_topics(make_plan("Optics"))
    with pytest.raises(ValueError, match=r"mastery of 'optics' must be between 0 and 1, got 1.2"):
        choose(topics, {"Optics": 1.2}, {}, None, None)


def test_a_prerequisite_cycle_is_refused_with_the_cycle() -> None:
    topics = study_topics(make_plan("Optics", "Gravitation", "Mole Concept"))
    pairs = [("Optics", "Gravitation"), ("Gravitation", "Mole Concept"), ("Mole Concept", "Optics")]
    with pytest.raises(PrerequisiteCycleError) as caught:
        direct_prerequisites(topics, pairs)
    assert caught.value.cycle == ["Optics", "Gravitation", "Mole Concept", "Optics"]


def test_pairs_naming_other_topics_or_a_topic_itself_are_ignored() -> None:
    topics = study_topics(make_plan("Optics", "Gravitation"))
    pairs = [("Kinematics", "Optics"), ("Optics", "Optics"), ("Optics", "Gravitation")]
    assert direct_prerequisites(topics, pairs) == [[], [0]]
    assert direct_prerequisites(topics, None) == [[], [0]]
    assert direct_prerequisites(topics, []) == [[], []]


def test_study_topics_are_the_plans_in_order_with_weights() -> None:
    plan = make_plan("Optics", "Gravitation", "optics", "Mole Concept", critical=("Gravitation",))
    topics = study_topics(plan, weights={"MOLE CONCEPT": 3})
    assert [(t.name, t.weight) for t in topics] == [
        ("Optics", 1.0),
        ("Gravitation", 2.0),
        ("Mole Concept", 3.0),
    ]
    focused = study_topics(plan, focus_topics=["mole concept", "Optics"])
    assert [t.name for t in focused] == ["Optics", "Mole Concept"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"focus_topics": ["Optics", "Kinematics"]}, "not in it: kinematics"),
        ({"focus_topics": []}, "not in it: (empty list)"),
        ({"weights": {"Optics": 0}}, "the weight of 'optics' must be a positive number, not 0"),
        ({"weights": {"Optics": math.nan}}, "must be a positive number, not nan"),
    ],
)
def test_study_topics_refusals_say_why(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RunSetupError) as caught:
        study_topics(make_plan("Optics", "Gravitation"), **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_a_plan_without_topics_is_refused() -> None:
    empty = StudyPlan(exam_name="x", total_days=0, overview="")
    with pytest.raises(RunSetupError, match="the plan has no topics"):
        study_topics(empty)
    assert topic_key("  Newton's   RINGS ") == "newton's rings"
