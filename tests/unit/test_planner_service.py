"""The planner service's own logic, without a model, Kafka or Postgres: routing cross-check,
topic resolution, the fix loop's edits, the words' screens, the cache key, refusals.
"""

from __future__ import annotations

import datetime as dt

import pytest

from exammentor.contracts.plan import PlanRequest, RouterDecision, RouterScope
from services.planner import prompts
from services.planner.domain import (
    CapacityError,
    Clarification,
    ParsedTopic,
    Routing,
    SyllabusTopic,
    UnknownScopeError,
    apply_moves,
    apply_prose,
    cross_check,
    load_registry,
    parse_syllabus,
    plan_cache_key,
    registry_syllabus,
    resolve_topics,
    schedule_plan,
    verify_plan,
    wished_topics,
)
from services.planner.handlers import rejection

REGISTRY = load_registry()
START = dt.date(2026, 1, 5)


def request(**fields: object) -> PlanRequest:
    return PlanRequest.model_validate({"goal": "Plan my studies", **fields})


def parsed(text: str) -> list[ParsedTopic]:
    return parse_syllabus(
        text, known_topics=REGISTRY.vocabulary(), section_names=REGISTRY.section_names()
    )


def model(exam: str = "none", subject: str = "", sub_subject: str | None = None) -> RouterDecision:
    return RouterDecision(
        intent="plan",
        exam=exam,
        scope=RouterScope(subject=subject, sub_subject=sub_subject),
        confidence=0.6,
    )


def routed(result: Routing | Clarification) -> Routing:
    assert isinstance(result, Routing), result
    return result


# --- Routing -----------------------------------------------------------------------------


def test_exam_field_and_the_scope_the_goal_names_decide_the_routing() -> None:
    routing = routed(
        cross_check(
            REGISTRY,
            request(exam_type="NEET", goal="Organic chemistry in 10 days please"),
            None,
            None,
        )
    )
    assert routing.exam is not None
    assert routing.exam.key == "neet"
    assert [(s.subject, s.sub_subject) for s in routing.scopes] == [("chemistry", "organic")]
    assert routing.exam_name == "NEET (UG) - Organic Chemistry"
    assert routing.decision.scope.subject == "chemistry"
    assert routing.decision.scope.sub_subject == "organic"


def test_several_subjects_named_are_all_planned() -> None:
    routing = routed(
        cross_check(REGISTRY, request(exam_type="jee", goal="physics and maths"), None, None)
    )
    assert sorted(s.subject or "" for s in routing.scopes) == ["math", "physics"]
    assert routing.decision.scope.subject == ""  # one scope only fits the contract's field


def test_the_models_scope_is_taken_when_a_word_of_the_goal_supports_it() -> None:
    routing = routed(
        cross_check(
            REGISTRY,
            request(exam_type="neet", goal="I keep failing the chemical stuff"),
            None,
            model("neet", "chemistry"),
        )
    )
    assert [s.subject for s in routing.scopes] == ["chemistry"]
    assert routing.decision.confidence == 0.9


def test_the_models_scope_is_not_taken_on_its_word_alone() -> None:
    routing = routed(
        cross_check(
            REGISTRY, request(exam_type="neet", goal="Crack NEET"), None, model("neet", "physics")
        )
    )
    assert routing.scopes == ()
    assert any("not accepted" in note for note in routing.notes)


def test_a_scope_the_registry_does_not_know_is_not_accepted() -> None:
    routing = routed(
        cross_check(
            REGISTRY,
            request(exam_type="jee", goal="JEE prep with a biological twist"),
            None,
            model("jee", "biology"),
        )
    )
    assert routing.scopes == ()
    assert any("unknown subject 'biology'" in note for note in routing.notes)
    assert routing.exam is not None
    assert routing.exam.key == "jee"


def test_a_subject_the_exam_does_not_have_gets_a_clarifying_question() -> None:
    result = cross_check(REGISTRY, request(exam_type="neet", goal="NEET maths plan"), None, None)
    assert isinstance(result, Clarification)
    assert "NEET (UG) has no Mathematics" in result.question
    assert "Biology, Physics or Chemistry" in result.question
    assert result.options == ("biology", "physics", "chemistry", "all")
    assert result.as_result()["needs_clarification"] is True
    assert result.routing.decision.needs_clarification


def test_a_goal_naming_another_exam_gets_a_clarifying_question() -> None:
    result = cross_check(
        REGISTRY, request(exam_type="neet", goal="my JEE Main physics"), None, None
    )
    assert isinstance(result, Clarification)
    assert result.options == ("neet", "jee")


def test_a_goal_naming_the_chosen_exam_and_another_is_not_ambiguous() -> None:
    routing = routed(
        cross_check(REGISTRY, request(exam_type="neet", goal="NEET, not JEE: physics"), None, None)
    )
    assert routing.exam is not None
    assert routing.exam.key == "neet"


def test_a_pasted_syllabus_without_an_exam_is_matched_to_the_exam_it_overlaps() -> None:
    text = "- Integral Calculus\n- Differential Equations\n- Vector Algebra\n- Poetry"
    routing = routed(cross_check(REGISTRY, request(syllabus_text=text), parsed(text), None))
    assert routing.exam is not None
    assert routing.exam.key == "jee"
    assert routing.exam_name == "JEE Main"


def test_a_pasted_syllabus_matching_no_exam_is_the_students_own() -> None:
    text = "- Sonnets\n- Haiku\n- Free verse"
    routing = routed(
        cross_check(REGISTRY, request(syllabus_text=text), parsed(text), model("neet"))
    )
    assert routing.exam is None
    assert routing.exam_name == "Own syllabus"


def test_an_exam_the_registry_does_not_know_keeps_its_name_with_a_syllabus() -> None:
    text = "- Kinematics\n- Optics"
    routing = routed(
        cross_check(
            REGISTRY,
            request(exam_type="Class 12 Boards", syllabus_text=text),
            parsed(text),
            None,
        )
    )
    assert routing.exam_name == "Class 12 Boards"


def test_an_unknown_exam_without_a_syllabus_is_refused() -> None:
    with pytest.raises(UnknownScopeError):
        cross_check(REGISTRY, request(exam_type="gcse"), None, None)


# --- Topics ------------------------------------------------------------------------------


def test_the_pasted_syllabus_wins_and_the_registry_narrows_and_enriches_it() -> None:
    text = "1. Kinematics\n2. Laws of Motion\n3. Chemical Bonding and Molecular Structure\n4. Yoga"
    req = request(exam_type="neet", goal="only physics this week", syllabus_text=text)
    topics = parsed(text)
    routing = routed(cross_check(REGISTRY, req, topics, None))
    resolved = resolve_topics(REGISTRY, routing, topics, req.goal)
    assert resolved.source == "pasted"
    assert [t.name for t in resolved.topics] == ["Kinematics", "Laws of Motion"]
    assert resolved.excluded == ["Chemical Bonding and Molecular Structure", "Yoga"]
    laws = resolved.topics[1]
    assert laws.registry_name == "Laws of Motion"
    assert laws.prerequisites == ("Kinematics",)  # from the registry, in the student's words


def test_the_registrys_topics_are_planned_when_nothing_is_pasted() -> None:
    req = request(exam_type="upsc", goal="polity")
    resolved = resolve_topics(
        REGISTRY, routed(cross_check(REGISTRY, req, None, None)), None, req.goal
    )
    assert resolved.source == "registry"
    assert [t.name for t in resolved.topics] == [t.name for t in REGISTRY.topics("upsc", "polity")]


def test_a_whole_exam_is_plannable_with_shared_topic_names_qualified() -> None:
    topics = registry_syllabus(REGISTRY, list(REGISTRY.exam("neet").topics))
    names = [t.name for t in topics]
    assert len(names) == len(set(names)) == len(REGISTRY.exam("neet").topics)
    assert {"Thermodynamics (Physics)", "Thermodynamics (Chemistry)"} <= set(names)
    by_name = {t.name: t for t in topics}
    assert all(p in by_name for t in topics for p in t.prerequisites)
    result = schedule_plan(topics, days=60, start_date=START)
    assert verify_plan(result.plan, result.topics).is_valid


# --- The fix loop ------------------------------------------------------------------------

TOPICS = [
    SyllabusTopic(name="Algebra", hours=6),
    SyllabusTopic(name="Geometry", hours=6, prerequisites=("Algebra",)),
    SyllabusTopic(name="Statistics", hours=6),
    SyllabusTopic(name="Poetry", hours=6),
]


def test_a_goal_that_places_a_named_topic_is_a_wish() -> None:
    assert wished_topics("Start with Poetry please", TOPICS) == ["Poetry"]
    assert wished_topics("Statistics before Algebra", TOPICS) == ["Algebra", "Statistics"]
    assert wished_topics("I like Poetry", TOPICS) == []  # no order asked for
    assert wished_topics("first things first", TOPICS) == []  # no topic named


def test_a_move_puts_every_learning_session_on_the_new_day_and_the_verifier_judges_it() -> None:
    plan = schedule_plan(TOPICS, days=6, hours_per_day=6, start_date=START).plan
    moved = apply_moves(plan, [prompts.TopicMoveProposal(topic="Geometry", to_day=1)])
    learned = {
        (day.day, t.name): t.hours
        for day in moved.schedule
        for t in day.topics
        if t.kind == "learn"
    }
    assert [k for k in learned if k[1] == "Geometry"] == [(1, "Geometry")]
    assert learned[(1, "Geometry")] == 6
    for day in moved.schedule:
        assert day.estimated_hours == sum(t.hours or 0 for t in day.topics)
    verification = verify_plan(moved, TOPICS, hours_per_day=6)
    assert not verification.is_valid
    assert verification.overloaded_days == [1]
    assert plan.schedule[0].estimated_hours <= 6  # the original is untouched

    last = max(d.day for d in plan.schedule if d.day_type == "study")
    late = apply_moves(plan, [prompts.TopicMoveProposal(topic="Algebra", to_day=last)])
    violations = verify_plan(late, TOPICS, hours_per_day=6).prerequisite_violations
    assert [(v.topic, v.prerequisite, v.prerequisite_day) for v in violations] == [
        ("Geometry", "Algebra", last)
    ]


def test_a_move_drops_reviews_that_would_come_before_the_learning() -> None:
    plan = schedule_plan(TOPICS, days=10, hours_per_day=8, start_date=START).plan
    reviewed = [d.day for d in plan.schedule for t in d.topics if t.kind == "review"]
    assert reviewed
    last = max(d.day for d in plan.schedule if d.day_type == "study")
    moved = apply_moves(plan, [prompts.TopicMoveProposal(topic="Algebra", to_day=last)])
    for day in moved.schedule:
        for t in day.topics:
            if t.name == "Algebra" and t.kind == "review":
                assert day.day > last


# --- Words -------------------------------------------------------------------------------

FACTS = prompts.PlanFacts(
    exam_name="JEE Main", days=7, topics=4, learn_hours=24, revision_days=1, critical=("Algebra",)
)


def test_an_overview_with_numbers_not_in_the_plan_is_refused() -> None:
    good = prompts.OverviewAnswer(overview="Seven days for 4 topics. Algebra comes first! Extra")
    assert prompts.screen_overview(good, FACTS) == "Seven days for 4 topics. Algebra comes first!"
    with pytest.raises(ValueError, match="numbers 12"):
        prompts.screen_overview(
            prompts.OverviewAnswer(overview="You will study 12 topics in all."), FACTS
        )
    with pytest.raises(ValueError, match="repeats"):
        prompts.screen_overview(prompts.OverviewAnswer(overview="The plan is a plan. " * 6), FACTS)


def test_themes_that_repeat_are_refused_and_copies_of_the_topics_left_out() -> None:
    schema = prompts.themes_schema(3)
    listing = ["Algebra", "Geometry", "revision"]
    answer = schema.model_validate({"d1": "Algebra", "d2": "Shapes and proofs", "d3": "Lock it in"})
    assert prompts.screen_themes(answer, listing) == {2: "Shapes and proofs", 3: "Lock it in"}
    same = schema.model_validate({"d1": "Go go go", "d2": "Go go go", "d3": "Go go go"})
    with pytest.raises(ValueError, match="repeats another day's theme"):
        prompts.screen_themes(same, listing)


def test_reasons_that_only_name_the_topic_are_refused() -> None:
    schema = prompts.rationale_schema(2)
    names = ["Algebra", "Geometry"]
    answer = schema.model_validate(
        {"t1": "Algebra", "t2": "Shapes come up in every paper and reward careful drawing"}
    )
    assert prompts.screen_rationales(answer, names) == {
        "Geometry": "Shapes come up in every paper and reward careful drawing."
    }
    with pytest.raises(ValueError, match="not only its name"):
        prompts.screen_rationales(schema.model_validate({"t1": "Algebra", "t2": "Geometry"}), names)


def test_the_models_words_come_first_and_the_schedulers_facts_stay() -> None:
    plan = schedule_plan(TOPICS, days=6, hours_per_day=8, start_date=START).plan
    explained = apply_prose(
        plan,
        overview="A calm week.",
        themes={1: "Foundations"},
        reasons={"Algebra": "Everything else builds on it."},
    )
    assert explained.overview == f"A calm week. {plan.overview}"
    assert explained.schedule[0].theme == f"Foundations: {plan.schedule[0].theme}"
    algebra = [t for d in explained.schedule for t in d.topics if t.name == "Algebra"]
    assert all(
        t.rationale.startswith("Everything else builds on it. Weight")
        for t in algebra
        if t.kind == "learn"
    )
    assert all(not t.rationale.startswith("Everything") for t in algebra if t.kind != "learn")


def test_an_edit_must_name_topics_and_learning_days_of_the_plan() -> None:
    schema = prompts.plan_edit_schema(["Poetry", "Algebra"], [1, 2, 3])
    assert "enum" in str(schema.model_json_schema())

    def edit(topic: str, day: int) -> prompts.PlanEditAnswer:
        return prompts.PlanEditAnswer.model_validate({"moves": [{"topic": topic, "to_day": day}]})

    def check(answer: prompts.PlanEditAnswer) -> None:
        prompts.check_edit(answer, movable=["Poetry", "Algebra"], study_days=[1, 2, 3])

    check(edit("Poetry", 1))
    with pytest.raises(ValueError, match="not in the plan"):
        check(edit("Sonnets", 2))
    with pytest.raises(ValueError, match="not a learning day"):
        check(edit("Poetry", 7))


# --- Cache key and refusals ---------------------------------------------------------------


def test_the_cache_key_ignores_whitespace_and_case_but_not_what_changes_the_plan() -> None:
    base = request(
        exam_type="NEET",
        goal="Biology  first",
        syllabus_text="- Cell\n\n-   Genetics ",
        start_date=START,
    )
    same = request(
        exam_type="neet ",
        goal="  biology first",
        syllabus_text="- Cell\n-\u00a0Genetics",
        start_date=START,
    )
    key = plan_cache_key(base, "f")
    assert plan_cache_key(same, "f") == key
    assert plan_cache_key(base.model_copy(update={"days": 8}), "f") != key
    assert plan_cache_key(base.model_copy(update={"start_date": dt.date(2026, 1, 6)}), "f") != key
    assert plan_cache_key(base, "other registry") != key


def test_a_syllabus_that_does_not_fit_is_refused_with_the_numbers() -> None:
    req = request(exam_type="neet", days=2)
    with pytest.raises(CapacityError) as caught:
        schedule_plan(TOPICS * 1, days=1, hours_per_day=2, start_date=START)
    refused = rejection(caught.value, req)
    assert refused.code == "capacity_exceeded"
    assert refused.message.startswith("days: the syllabus needs 24 h")
    error = refused.as_error()
    assert error["field"] == "days"
    assert error["needed_hours"] == 24
    assert error["available_hours"] == caught.value.available_hours
    unknown = rejection(UnknownScopeError("unknown exam 'gcse'", ["neet", "jee"]), req)
    assert unknown.code == "unknown_exam"
    assert unknown.message.startswith("exam_type: 'neet'")
