"""Hypothesis strategies and plan helpers shared by the planner's unit tests."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from hypothesis import strategies as st

from exammentor.contracts.plan import OverflowPolicy, StudyPlan
from services.planner.domain import (
    ScheduleResult,
    SyllabusTopic,
    normalise_topic_name,
    schedule_plan,
)

START = dt.date(2026, 1, 5)

# Realistic, distinct names (some with commas, '&' and apostrophes) so the scheduler and the
# verifier are exercised on the names students actually paste.
TOPIC_NAMES = (
    "Physical World and Measurement",
    "Kinematics",
    "Laws of Motion",
    "Work, Energy and Power",
    "Rotational Motion",
    "Gravitation",
    "Properties of Bulk Matter",
    "Thermodynamics",
    "Kinetic Theory",
    "Oscillations & Waves",
    "Electrostatics",
    "Current Electricity",
    "Magnetism",
    "Electromagnetic Induction",
    "Optics",
    "Dual Nature of Radiation",
    "Atoms and Nuclei",
    "Electronic Devices",
    "Newton's Rings",
    "Mole Concept",
)


@dataclass(frozen=True)
class ScheduleInput:
    """Arguments of one ``schedule_plan`` call."""

    topics: list[SyllabusTopic]
    days: int
    hours_per_day: float
    days_off: list[dt.date] = field(default_factory=list)
    exam_date: dt.date | None = None
    overflow: OverflowPolicy = "refuse"

    def schedule(self, **changes: int) -> ScheduleResult:
        """Run the scheduler on this input (``days`` may be changed)."""
        return schedule_plan(
            self.topics,
            days=changes.get("days", self.days),
            hours_per_day=self.hours_per_day,
            start_date=START,
            exam_date=self.exam_date,
            days_off=self.days_off,
            overflow=self.overflow,
            exam_name="Test exam",
        )


@st.composite
def syllabi(
    draw: st.DrawFn, max_topics: int = 12, max_hours_units: int = 48
) -> list[SyllabusTopic]:
    """Topics with random weights, hours and an acyclic prerequisite graph, in random order."""
    count = draw(st.integers(1, max_topics))
    names = draw(st.permutations(TOPIC_NAMES))[:count]
    topics: list[SyllabusTopic] = []
    for i, name in enumerate(names):
        # Prerequisites only point to earlier-drawn topics, so the graph is acyclic.
        prerequisites = (
            draw(st.lists(st.sampled_from(names[:i]), max_size=3, unique=True)) if i else []
        )
        topics.append(
            SyllabusTopic(
                name=name,
                weight=draw(st.integers(1, 10)),
                hours=draw(st.integers(1, max_hours_units)) / 4,
                difficulty=draw(st.sampled_from(["easy", "medium", "hard"])),
                prerequisites=tuple(prerequisites),
            )
        )
    order = draw(st.permutations(range(count)))
    return [topics[i] for i in order]


@st.composite
def schedule_inputs(draw: st.DrawFn) -> ScheduleInput:
    """Any valid scheduler input: may or may not fit, may have days off and an exam date."""
    topics = draw(syllabi())
    days = draw(st.integers(1, 40) | st.integers(41, 365))
    off = draw(st.sets(st.integers(0, days - 1), max_size=days // 3))
    exam = draw(st.none() | st.integers(1, 90))
    return ScheduleInput(
        topics=topics,
        days=days,
        hours_per_day=draw(st.integers(1, 64)) / 4,
        days_off=sorted(START + dt.timedelta(days=d) for d in off),
        exam_date=None if exam is None else START + dt.timedelta(days=exam),
        overflow=draw(st.sampled_from(["refuse", "drop"])),
    )


@st.composite
def fitting_inputs(draw: st.DrawFn) -> ScheduleInput:
    """Inputs that always fit: at least 4 h a day, topics of at most 4 h, days to spare."""
    topics = draw(syllabi(max_topics=10, max_hours_units=16))
    return ScheduleInput(
        topics=topics,
        days=draw(st.integers(len(topics) + 6, 40)),
        hours_per_day=draw(st.integers(16, 48)) / 4,
    )


def quarter_hours(hours: float) -> float:
    """Hours rounded up to a quarter, as the scheduler counts them."""
    return max(1, math.ceil(hours * 4 - 1e-9)) / 4


def learn_days(plan: StudyPlan) -> dict[str, list[int]]:
    """Normalised topic name -> days with a learning session of it."""
    found: dict[str, list[int]] = {}
    for day in plan.schedule:
        for topic in day.topics:
            if topic.kind == "learn":
                found.setdefault(normalise_topic_name(topic.name), []).append(day.day)
    return found


def learn_hours(plan: StudyPlan) -> dict[str, float]:
    """Normalised topic name -> hours of learning sessions."""
    found: dict[str, float] = {}
    for day in plan.schedule:
        for topic in day.topics:
            if topic.kind == "learn":
                key = normalise_topic_name(topic.name)
                found[key] = found.get(key, 0.0) + (topic.hours or 0.0)
    return found


def restate_hours(plan: StudyPlan) -> StudyPlan:
    """The plan with each day's ``estimated_hours`` recomputed from its sessions."""
    for day in plan.schedule:
        day.estimated_hours = sum(topic.hours or 0.0 for topic in day.topics)
    return plan
