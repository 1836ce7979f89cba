"""The goal weights what it names and leaves out only what it asks to leave out: the original's
onboarding example through the planner's domain and its workflow (no model), and the rules of
:func:`read_focus` one by one.
"""

from __future__ import annotations

import datetime as dt

import pytest

from exammentor.contracts.plan import PlanRequest
from services.planner.domain import (
    CapacityError,
    ResolvedTopics,
    SyllabusRegistry,
    SyllabusTopic,
    fit_estimates,
    load_registry,
    read_focus,
    schedule_plan,
    with_left_out,
)
from services.planner.domain.revisions import PlannedStudy
from services.planner.settings import PlannerSettings
from services.planner.workflow import PlanWorkflow

START = dt.date(2026, 12, 7)
ONBOARDING = """NEET Biology Syllabus:
1. Cell Biology - Cell structure, cell organelles, cell division (mitosis, meiosis)
2. Genetics - Mendelian genetics, molecular biology, DNA replication, transcription, translation
3. Human Physiology - Digestion, Circulation, Respiration, Excretion, Neural control
4. Plant Physiology - Photosynthesis, Respiration, Plant hormones, Mineral nutrition
5. Ecology - Ecosystems, Biodiversity, Environmental issues, Population dynamics
6. Evolution - Origin of life, Theories of evolution, Human evolution
7. Biotechnology - Recombinant DNA, Applications in medicine and agriculture
8. Reproduction - Human reproduction, Plant reproduction, Reproductive health
"""
ONBOARDING_GOAL = "I want to score 650+ in NEET and master Cell Biology and Genetics"
UNITS = {
    "Cell Biology": 3,
    "Genetics": 5,
    "Human Physiology": 5,
    "Plant Physiology": 4,
    "Ecology": 4,
    "Evolution": 3,
    "Biotechnology": 2,
    "Reproduction": 3,
}


@pytest.fixture(scope="module")
def registry() -> SyllabusRegistry:
    return load_registry()


async def plan(registry: SyllabusRegistry, goal: str, **fields: object) -> PlannedStudy:
    workflow = PlanWorkflow(registry, None, PlannerSettings(llm_enabled=False))
    # What the original's onboarding page sends: syllabus, exam, goal, 7 days.
    request = PlanRequest.model_validate(
        {
            "syllabus_text": ONBOARDING,
            "exam_type": "NEET",
            "goal": goal,
            "days": 7,
            "start_date": START,
            **fields,
        }
    )
    result = await workflow.run(request)
    assert isinstance(result, PlannedStudy)
    return result


def learned(result: PlannedStudy) -> list[str]:
    plan = result.history.final_plan
    names = [t.name for d in plan.schedule for t in d.topics if t.kind == "learn"]
    return list(dict.fromkeys(names))


async def test_the_onboarding_example_plans_every_unit_and_weights_the_named_ones(
    registry: SyllabusRegistry,
) -> None:
    result = await plan(registry, ONBOARDING_GOAL)
    names = [t.name for t in result.topics.topics]
    # Every item of every unit, under its unit; the label line is not a topic.
    assert len(names) == sum(UNITS.values()) == 29
    assert {name.split(": ")[0] for name in names} == set(UNITS)
    assert "Cell Biology: cell division (mitosis, meiosis)" in names
    assert not any("Syllabus" in name for name in names)
    assert result.topics.excluded == []
    assert result.history.final_plan.dropped_topics == []
    assert result.verification.is_valid
    assert result.verification.coverage_percent == 100.0
    assert set(learned(result)) == set(names)

    # The two units the goal names are the critical topics and come first.
    critical = result.history.final_plan.critical_topics
    assert len(critical) == 5
    assert {name.split(": ")[0] for name in critical} == {"Cell Biology", "Genetics"}
    assert learned(result)[0].startswith("Cell Biology: ")
    notes = result.as_result()["notes"]
    assert any("your goal names Cell Biology and Genetics" in note for note in notes)
    # Our hour estimates ran long for 7 days: scaled, and said so; nothing left out for it.
    assert any("scaled to" in note and "no topic was left out" in note for note in notes)


async def test_a_goal_that_asks_for_one_unit_only_leaves_the_rest_out_and_says_so(
    registry: SyllabusRegistry,
) -> None:
    result = await plan(registry, "only Genetics this week")
    genetics = [t.name for t in result.topics.topics]
    assert genetics == [
        "Genetics: Mendelian genetics",
        "Genetics: molecular biology",
        "Genetics: DNA replication",
        "Genetics: transcription",
        "Genetics: translation",
    ]
    body = result.as_result()
    assert len(body["excluded_topics"]) == 29 - 5
    assert "Ecology: Biodiversity" in body["excluded_topics"]
    said = [note for note in body["notes"] if "left out because your goal asks" in note]
    assert len(said) == 1
    assert "'only genetics'" in said[0]
    assert all(name in said[0] for name in body["excluded_topics"])
    # The stored plan says it too: the topics, with the reason, and a sentence.
    plan_ = result.history.final_plan
    assert [d.name for d in plan_.dropped_topics] == body["excluded_topics"]
    assert {d.reason for d in plan_.dropped_topics} == {
        "left out because your goal asks for it ('only genetics')"
    }
    assert "Not planned, left out because your goal asks for it" in plan_.overview
    assert result.verification.is_valid


def topic(name: str, heading: str | None = None, **fields: object) -> SyllabusTopic:
    full = f"{heading}: {name}" if heading else name
    return SyllabusTopic.model_validate({"name": full, "heading": heading, **fields})


PASTED = [
    topic("Cell structure", "Cell Biology"),
    topic("Cell division", "Cell Biology"),
    topic("Mendelian genetics", "Genetics"),
    topic("Ecosystems", "Ecology"),
    topic("Biodiversity", "Ecology"),
]


def test_a_named_heading_weights_its_items_and_drops_nothing() -> None:
    focus = read_focus("master Cell Biology please", PASTED)
    assert focus.weighted == {"Cell Biology: Cell structure", "Cell Biology: Cell division"}
    assert focus.left_out == frozenset()
    assert focus.named == ("Cell Biology",)


def test_a_named_item_weights_that_item() -> None:
    focus = read_focus("I keep failing biodiversity questions", PASTED)
    assert focus.weighted == {"Ecology: Biodiversity"}


def test_a_subject_inside_a_pasted_name_is_not_the_subject(registry: SyllabusRegistry) -> None:
    # "Cell Biology" is a pasted heading; its "Biology" is not NEET's subject.
    focus = read_focus("master Cell Biology", PASTED, registry.exam("neet"))
    assert focus.named == ("Cell Biology",)


@pytest.mark.parametrize(
    "goal",
    [
        "only Genetics",
        "just the Genetics unit",
        "Genetics only, please",
        "I will only focus on Genetics",
    ],
)
def test_only_next_to_a_name_keeps_that_name_and_leaves_out_the_rest(goal: str) -> None:
    focus = read_focus(goal, PASTED)
    assert {t.name for t in PASTED} - focus.left_out == {"Genetics: Mendelian genetics"}
    assert len(focus.asked) == 1


@pytest.mark.parametrize(
    "goal", ["skip Ecology", "everything except Ecology", "leave out the Ecology unit"]
)
def test_skip_before_a_name_leaves_that_name_out(goal: str) -> None:
    focus = read_focus(goal, PASTED)
    assert focus.left_out == {"Ecology: Ecosystems", "Ecology: Biodiversity"}


@pytest.mark.parametrize(
    "goal",
    [
        "I only have a week left, master Genetics",  # "only" is about the week
        "Genetics is hard and I just started",
        "master Cell Biology and Genetics",
    ],
)
def test_only_far_from_a_name_or_no_such_word_leaves_nothing_out(goal: str) -> None:
    assert read_focus(goal, PASTED).left_out == frozenset()


def test_a_goal_that_asks_for_an_order_places_names_instead_of_weighting_them() -> None:
    focus = read_focus("Genetics first, then Ecology", PASTED)
    assert focus.weighted == frozenset()
    assert focus.named == ()
    assert focus.left_out == frozenset()


def test_a_goal_that_would_leave_nothing_plans_everything_and_says_why() -> None:
    focus = read_focus("only Genetics but skip Genetics", PASTED)
    assert focus.left_out == frozenset()
    assert focus.notes == ("the goal would leave no topic to plan; all of them are planned",)


def test_a_registry_alias_of_a_pasted_topic_names_it(registry: SyllabusRegistry) -> None:
    genetics = topic("Genetics and Evolution", registry_name="Genetics and Evolution")
    cell = topic("Cell Structure and Function", registry_name="Cell Structure and Function")
    focus = read_focus("genetics needs extra care", [cell, genetics], registry.exam("neet"))
    assert focus.weighted == {"Genetics and Evolution"}
    assert focus.named == ("Genetics and Evolution",)


def test_a_subject_weights_only_when_the_paste_reaches_beyond_it(
    registry: SyllabusRegistry,
) -> None:
    neet = registry.exam("neet")
    kinematics = topic("Kinematics", registry_name="Kinematics")
    cell = topic("Cell Structure and Function", registry_name="Cell Structure and Function")
    mixed = read_focus("push biology", [kinematics, cell], neet)
    assert mixed.weighted == {"Cell Structure and Function"}
    only_biology = read_focus("push biology", [cell, topic("Yoga")], neet)
    assert only_biology.weighted == frozenset()  # naming the paste's own subject chooses nothing


def test_estimates_that_run_long_are_scaled_to_fit_down_to_half() -> None:
    topics = [SyllabusTopic(name=f"T{i}", hours=3) for i in range(6)]  # 18 h
    resolved = ResolvedTopics(topics, "pasted")
    with pytest.raises(CapacityError) as caught:
        schedule_plan(topics, days=3, hours_per_day=4, start_date=START)
    fitted = fit_estimates(resolved, caught.value)
    assert fitted is not None
    assert sum(t.hours for t in fitted.topics) == caught.value.available_hours
    assert all(t.hours >= 1.5 for t in fitted.topics)
    assert "no topic was left out" in fitted.notes[-1]
    assert schedule_plan(fitted.topics, days=3, hours_per_day=4, start_date=START).plan
    # More than twice the room: refused as before; the registry's own hours never scale.
    with pytest.raises(CapacityError) as far:
        schedule_plan(topics, days=1, hours_per_day=4, start_date=START)
    assert fit_estimates(resolved, far.value) is None
    assert fit_estimates(ResolvedTopics(topics, "registry"), caught.value) is None


def test_topics_left_out_at_the_students_request_are_recorded_in_the_plan() -> None:
    topics = [SyllabusTopic(name="A"), SyllabusTopic(name="B", hours=3, weight=2)]
    plan_ = schedule_plan(topics[:1], days=3, start_date=START).plan
    noted = with_left_out(plan_, topics[1:], "left out because your goal asks for it ('only a')")
    assert [(d.name, d.hours, d.weight) for d in noted.dropped_topics] == [("B", 3, 2)]
    assert noted.overview.endswith("('only a'): B.")
    assert with_left_out(plan_, [], "") is plan_
