"""Deterministic study scheduler: topics, days and an hours cap in, a :class:`StudyPlan` out.

How a plan is laid out:

1. **Calendar.** ``days`` calendar days from ``start_date``, cut short the day before
   ``exam_date`` when the exam falls inside them. Days off hold nothing.
2. **Revision.** The last study days are final revision days (1 from 4 study days, 2 from 15,
   3 from 45); plans with fewer than 4 study days keep a recap slot at the end of the last
   day instead. Every 7th study day is a weekly revision day, and each learning day keeps a
   small reserve (1/8 of the cap) free for spaced reviews.
3. **Capacity.** Learning hours needed are compared with the learning days' hours. When they
   do not fit, the review reserve and then the weekly revision days are given up for
   learning; when that is still not enough the request is refused with the numbers
   (:class:`CapacityError`) or, with ``overflow='drop'``, the least important topics are left
   out (a prerequisite counts as at least as important as what builds on it).
4. **Learning.** Topics in prerequisite order (among topics whose prerequisites are done, the
   most important first: its weight, or the weight of the heaviest topic building on it if
   that is higher; then syllabus order) fill the learning days evenly, each day up to the
   same level, so a light syllabus spreads over the whole window; a topic that does not fit
   a day continues the next day. Slivers under half an hour are avoided while there is slack.
5. **Reviews.** Each topic gets short reviews 1, 3 and 7 days after its last learning
   session, where a learning day before the final revision has room (slipping at most two
   learning days).
6. **Revision content.** Weekly revision days revise the topics finished since the previous
   one; the final days revise every topic, critical topics last. A topic's revision time is a
   quarter of its learning time (at least a quarter hour), trimmed by weight to fit.

Each :class:`Topic` of a day is one session: ``hours`` is that session's length, ``kind`` says
whether it is learning, a spaced review or revision, and ``part``/``parts`` number the
learning sessions of a topic split across days. A day's ``estimated_hours`` is the sum.

All arithmetic is in quarter hours (integers), so hours in the plan are exact floats and a
day's total never exceeds the cap through rounding. Nothing depends on the clock, on hashing
order or on randomness: the same input gives the same plan.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from exammentor.contracts.plan import (
    MAX_DAYS,
    MAX_HOURS_PER_DAY,
    MIN_DAYS,
    MIN_HOURS_PER_DAY,
    DailyPlan,
    DayType,
    DroppedTopic,
    OverflowPolicy,
    SessionKind,
    StudyPlan,
    Topic,
)
from services.planner.domain.errors import (
    CapacityError,
    DuplicateTopicError,
    EmptySyllabusError,
    NoStudyDaysError,
    PlanningError,
    PrerequisiteCycleError,
)
from services.planner.domain.names import normalise_topic_name
from services.planner.domain.topics import SyllabusTopic

UNITS_PER_HOUR = 4
"""The scheduler's unit is a quarter hour."""


@dataclass(frozen=True)
class SchedulePolicy:
    """Tunable rules of the scheduler; the defaults are what the planner uses.

    Attributes:
        review_offsets_days: Days after a topic's last learning session when it is reviewed.
        review_hours: Length of a spaced review session.
        review_slip_days: How many later learning days a review may move to when its day is
            full.
        review_reserve_share: Share of each learning day's cap kept for reviews.
        revision_share: Revision time of a topic as a share of its learning time.
        weekly_revision_every: Every n-th study day is a revision day (0 turns this off).
        final_revision_days: ``(study days at least, final revision days)`` steps.
        recap_share: Share of the last day kept for a recap when there are no final
            revision days.
        min_session_hours: Shortest learning session worth starting while there is slack.
    """

    review_offsets_days: tuple[int, ...] = (1, 3, 7)
    review_hours: float = 0.25
    review_slip_days: int = 2
    review_reserve_share: float = 0.125
    revision_share: float = 0.25
    weekly_revision_every: int = 7
    final_revision_days: tuple[tuple[int, int], ...] = ((4, 1), (15, 2), (45, 3))
    recap_share: float = 0.125
    min_session_hours: float = 0.5


DEFAULT_POLICY = SchedulePolicy()


class CapacityReport(BaseModel):
    """How the syllabus fitted the days."""

    model_config = ConfigDict(frozen=True)

    needed_hours: float
    """Learning hours of every topic given, before any was dropped."""
    scheduled_hours: float
    """Learning hours of the topics kept."""
    available_hours: float
    """Learning hours the chosen layout holds."""
    revision_reserve_hours: float
    """Hours of final revision days and of the recap slot."""
    study_days: int
    learning_days: int
    revision_days: int
    days_off: int
    adjustments: tuple[str, ...] = ()
    """What was given up to make the syllabus fit, in words."""


class ScheduleResult(BaseModel):
    """A computed plan and what the service needs to verify and explain it."""

    model_config = ConfigDict(frozen=True)

    plan: StudyPlan
    topics: tuple[SyllabusTopic, ...]
    """The topics kept, in learning order: the required topics for the verifier."""
    dropped: tuple[DroppedTopic, ...]
    capacity: CapacityReport


@dataclass
class _Session:
    topic: int
    kind: SessionKind
    units: int
    note: str = ""


@dataclass
class _Day:
    number: int
    date: dt.date | None
    day_type: DayType
    learn_budget: int
    sessions: list[_Session] = field(default_factory=list)

    @property
    def load(self) -> int:
        return sum(session.units for session in self.sessions)


@dataclass(frozen=True)
class _Layout:
    day_types: tuple[DayType, ...]
    learn_budgets: tuple[int, ...]
    final_days: tuple[int, ...]
    weekly_days: tuple[int, ...]
    recap_day: int | None
    recap_units: int
    review_reserve: int

    @property
    def capacity(self) -> int:
        return sum(self.learn_budgets)

    def revision_reserve(self, cap: int) -> int:
        return len(self.final_days) * cap + self.recap_units


def _units(hours: float) -> int:
    """Hours as quarter hours, rounded up, at least one."""
    # The epsilon keeps 1.5000000001 (float noise) from becoming 1.75.
    return max(1, math.ceil(hours * UNITS_PER_HOUR - 1e-9))


def _hours(units: int) -> float:
    return units / UNITS_PER_HOUR


def _fmt(hours: float) -> str:
    return f"{hours:g}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _join_names(names: Sequence[str], limit: int = 3) -> str:
    if len(names) > limit:
        return f"{', '.join(names[:limit])} and {len(names) - limit} more"
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _requirements(topics: Sequence[SyllabusTopic]) -> list[list[int]]:
    """For each topic, the indexes of its prerequisites that are in ``topics``."""
    index = {normalise_topic_name(topic.name): i for i, topic in enumerate(topics)}
    requires: list[list[int]] = []
    for topic in topics:
        found = {index.get(normalise_topic_name(name)) for name in topic.prerequisites}
        requires.append(sorted(j for j in found if j is not None))
    return requires


def _topological(
    topics: Sequence[SyllabusTopic], requires: Sequence[Sequence[int]], rank: Sequence[float]
) -> list[int]:
    """Kahn's algorithm; among ready topics the lowest ``rank``, then the earliest, goes first."""
    dependents: list[list[int]] = [[] for _ in topics]
    for i, needs in enumerate(requires):
        for j in needs:
            dependents[j].append(i)
    waiting = [len(needs) for needs in requires]
    ready = [(rank[i], i) for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for k in dependents[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, (rank[k], k))
    if len(order) < len(topics):
        raise PrerequisiteCycleError(_find_cycle(topics, requires, set(order)))
    return order


def _importance(
    topics: Sequence[SyllabusTopic], requires: Sequence[Sequence[int]], order: Sequence[int]
) -> list[float]:
    """A topic's weight, raised to the weight of the heaviest topic that builds on it."""
    importance = [topic.weight for topic in topics]
    # Reverse topological order settles every dependent before its prerequisites.
    for i in reversed(order):
        for j in requires[i]:
            importance[j] = max(importance[j], importance[i])
    return importance


def learning_order(topics: Sequence[SyllabusTopic]) -> list[int]:
    """Order topics so that every prerequisite comes before what builds on it.

    Among topics whose prerequisites are done, the most important goes first: a topic's
    weight, raised to the weight of the heaviest topic that builds on it (so a light
    foundation of a heavy topic is not left to the end). Ties go to the earlier position in
    ``topics``, so the syllabus's own order survives among equals.

    Args:
        topics: Topics with unique normalised names. Prerequisite names not among them are
            ignored.

    Returns:
        Indexes into ``topics`` in learning order.

    Raises:
        PrerequisiteCycleError: When prerequisites go round in a circle.
    """
    requires = _requirements(topics)
    any_order = _topological(topics, requires, [0.0] * len(topics))
    importance = _importance(topics, requires, any_order)
    return _topological(topics, requires, [-value for value in importance])


def _find_cycle(
    topics: Sequence[SyllabusTopic], requires: Sequence[Sequence[int]], placed: set[int]
) -> list[str]:
    # Every unplaced topic still requires an unplaced one, so walking "requires" edges
    # among them must come back to a topic already on the path.
    node = min(i for i in range(len(topics)) if i not in placed)
    path: list[int] = []
    seen: dict[int, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(j for j in requires[node] if j not in placed)
    cycle = [*path[seen[node] :], node]
    return [topics[i].name for i in cycle]


def _calendar(
    days: int,
    start_date: dt.date | None,
    exam_date: dt.date | None,
    days_off: Collection[dt.date],
) -> tuple[list[tuple[int, dt.date | None, bool]], bool]:
    """Calendar days as ``(number, date, is_off)`` and whether the plan ends at the exam."""
    window = days
    ends_at_exam = False
    if exam_date is not None:
        if start_date is None:
            raise PlanningError("an exam_date needs a start_date to place it in the plan")
        until_exam = (exam_date - start_date).days
        if until_exam < 1:
            raise NoStudyDaysError(
                f"exam_date {exam_date} leaves no study day from start_date {start_date}"
            )
        if until_exam <= days:
            window, ends_at_exam = until_exam, True
    if days_off and start_date is None:
        raise PlanningError("days_off need a start_date to place them in the plan")
    off = set(days_off)
    calendar: list[tuple[int, dt.date | None, bool]] = []
    for offset in range(window):
        date = start_date + dt.timedelta(days=offset) if start_date is not None else None
        calendar.append((offset + 1, date, date in off))
    return calendar, ends_at_exam


def _layout(
    off_flags: Sequence[bool], cap: int, policy: SchedulePolicy, *, weekly: bool, reviews: bool
) -> _Layout:
    study = [i for i, off in enumerate(off_flags) if not off]
    final_count = 0
    for threshold, count in policy.final_revision_days:
        if len(study) >= threshold:
            final_count = count
    final_days = tuple(study[len(study) - final_count :]) if final_count else ()
    weekly_days: tuple[int, ...] = ()
    every = policy.weekly_revision_every
    if weekly and every > 0:
        # Keep two learning days between the last weekly revision and the final ones.
        last = len(study) - final_count - 2
        weekly_days = tuple(study[k - 1] for k in range(every, last + 1, every))
    review_reserve = math.floor(cap * policy.review_reserve_share) if reviews else 0
    recap_day = study[-1] if study and not final_days else None
    recap_units = max(1, round(cap * policy.recap_share)) if recap_day is not None else 0
    revision = set(final_days) | set(weekly_days)
    day_types: list[DayType] = []
    budgets: list[int] = []
    for i, off in enumerate(off_flags):
        if off:
            day_types.append("off")
            budgets.append(0)
        elif i in revision:
            day_types.append("revision")
            budgets.append(0)
        else:
            day_types.append("study")
            budget = cap - review_reserve - (recap_units if i == recap_day else 0)
            budgets.append(max(0, budget))
    return _Layout(
        tuple(day_types),
        tuple(budgets),
        final_days,
        weekly_days,
        recap_day,
        recap_units,
        review_reserve,
    )


def _layouts(off_flags: Sequence[bool], cap: int, policy: SchedulePolicy) -> list[_Layout]:
    """Layouts from the fullest to the most compressed, in the order things are given up."""
    return [
        _layout(off_flags, cap, policy, weekly=True, reviews=True),
        _layout(off_flags, cap, policy, weekly=True, reviews=False),
        _layout(off_flags, cap, policy, weekly=False, reviews=False),
    ]


def _adjustments(chosen: _Layout, fullest: _Layout) -> tuple[str, ...]:
    notes: list[str] = []
    if fullest.review_reserve and not chosen.review_reserve:
        notes.append("no time reserved for spaced reviews; they go where a day has room left")
    if fullest.weekly_days and not chosen.weekly_days:
        notes.append("weekly revision days used for learning")
    return tuple(notes)


def _min_days_needed(
    needed: int,
    capacity: int,
    *,
    days: int,
    start_date: dt.date | None,
    exam_date: dt.date | None,
    days_off: Collection[dt.date],
    cap: int,
    policy: SchedulePolicy,
) -> int | None:
    # Each extra day adds at most one cap of capacity, so no shorter window can fit.
    first = days + max(1, math.ceil((needed - capacity) / cap))
    for window in range(first, MAX_DAYS + 1):
        calendar, ends_at_exam = _calendar(window, start_date, exam_date, days_off)
        if ends_at_exam and len(calendar) < window:
            return None  # the exam, not the number of days, is the limit
        layout = _layout([off for _, _, off in calendar], cap, policy, weekly=False, reviews=False)
        if layout.capacity >= needed:
            return window
    return None


def _drop_order(topics: Sequence[SyllabusTopic], order: Sequence[int]) -> list[int]:
    """Topics from least to most important (see :func:`learning_order`).

    A prerequisite is at least as important as what builds on it and, on a tie, comes later
    in this order, so a kept topic never loses its prerequisite.
    """
    position = {topic: pos for pos, topic in enumerate(order)}
    importance = _importance(topics, _requirements(topics), order)
    # Equal importance: the later in learning order goes first, so dependents before bases.
    return sorted(order, key=lambda i: (importance[i], -position[i]))


def _water_level(budgets: Sequence[int], needed: int) -> int:
    """The smallest per-day level whose capped sum holds ``needed``."""
    low, high = 0, max(budgets, default=0)
    while low < high:
        mid = (low + high) // 2
        if sum(min(budget, mid) for budget in budgets) >= needed:
            high = mid
        else:
            low = mid + 1
    return low


def _pack(
    days: Sequence[_Day],
    budgets: Sequence[int],
    items: Sequence[tuple[int, int]],
    *,
    kind: SessionKind,
    note: str = "",
    min_units: int = 1,
) -> None:
    """Lay ``(topic, units)`` items over ``days`` in order, evenly, splitting where needed."""
    needed = sum(units for _, units in items)
    if not needed:
        return
    level = _water_level(budgets, needed)
    targets = [min(budget, level) for budget in budgets]
    slack = sum(targets) - needed
    day, room = 0, targets[0]
    for topic, units in items:
        remaining = units
        while remaining:
            while room == 0:
                day += 1
                room = targets[day]
            if remaining > room and room < min_units and slack >= room:
                # A sliver at the end of a day helps nobody; start fresh tomorrow.
                slack -= room
                room = 0
                continue
            take = min(room, remaining)
            if 0 < remaining - take < min_units:
                # Nor does a sliver left for tomorrow: stop early so tomorrow's part is whole.
                shorter = remaining - min_units
                unused = take - shorter
                if shorter >= min_units and slack >= unused:
                    days[day].sessions.append(_Session(topic, kind, shorter, note))
                    slack -= unused
                    remaining -= shorter
                    room = 0
                    continue
            days[day].sessions.append(_Session(topic, kind, take, note))
            room -= take
            remaining -= take


def _fit_to_budget(
    requests: Sequence[tuple[int, int]], budget: int, priority: dict[int, tuple[float, int]]
) -> list[tuple[int, int]]:
    """Trim ``(topic, units)`` requests to a budget, a quarter hour at a time.

    Rounds go through the topics by priority, each topic still short of its request getting
    one more quarter hour, so the most important topics are revised first and no single
    topic eats the whole budget.
    """
    if sum(units for _, units in requests) <= budget:
        return list(requests)
    wanted = dict(requests)
    ranked = sorted(wanted, key=priority.__getitem__)
    granted = dict.fromkeys(ranked, 0)
    while budget:
        short = [topic for topic in ranked if granted[topic] < wanted[topic]]
        for topic in short[:budget]:
            granted[topic] += 1
        budget -= min(budget, len(short))
    return [(topic, granted[topic]) for topic, _ in requests if granted[topic]]


def schedule_plan(
    topics: Sequence[SyllabusTopic],
    *,
    days: int,
    hours_per_day: float = 8.0,
    start_date: dt.date | None = None,
    exam_date: dt.date | None = None,
    days_off: Collection[dt.date] = (),
    overflow: OverflowPolicy = "refuse",
    exam_name: str = "",
    policy: SchedulePolicy = DEFAULT_POLICY,
) -> ScheduleResult:
    """Compute a day-by-day plan.

    Args:
        topics: Topics to learn, names unique after :func:`normalise_topic_name`. Their
            order breaks ties between equally weighted topics.
        days: Calendar days of the plan, 1 to 365.
        hours_per_day: Cap on a day's hours (used in whole quarter hours).
        start_date: Date of day 1; needed for ``exam_date`` and ``days_off``.
        exam_date: The plan ends the day before it when it falls within ``days``.
        days_off: Dates with no study; dates outside the plan are ignored.
        overflow: ``refuse`` raises :class:`CapacityError` when the topics do not fit;
            ``drop`` leaves out the least important topics and lists them in the plan.
        exam_name: Written into the plan.
        policy: Scheduling rules.

    Returns:
        The plan, the topics kept in learning order, the dropped ones and a capacity report.

    Raises:
        EmptySyllabusError: No topics.
        DuplicateTopicError: Two topics with the same normalised name.
        PrerequisiteCycleError: Prerequisites in a circle.
        NoStudyDaysError: No day left to study.
        CapacityError: The topics do not fit (with ``overflow='drop'``: not even one).
        PlanningError: Days or cap out of range; dates without a ``start_date``.
    """
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise PlanningError(f"days must be between {MIN_DAYS} and {MAX_DAYS}, got {days}")
    if not MIN_HOURS_PER_DAY <= hours_per_day <= MAX_HOURS_PER_DAY:
        raise PlanningError(
            f"hours_per_day must be between {MIN_HOURS_PER_DAY:g} and {MAX_HOURS_PER_DAY:g},"
            f" got {hours_per_day:g}"
        )
    _check_topics(topics)
    cap = math.floor(hours_per_day * UNITS_PER_HOUR + 1e-9)
    order = learning_order(topics)
    units = [_units(topic.hours) for topic in topics]

    calendar, ends_at_exam = _calendar(days, start_date, exam_date, days_off)
    off_flags = [off for _, _, off in calendar]
    if all(off_flags):
        raise NoStudyDaysError("every day of the plan is a day off")
    layouts = _layouts(off_flags, cap, policy)
    most_compressed = layouts[-1]

    needed = sum(units)
    kept = list(order)
    dropped: list[DroppedTopic] = []
    if needed > most_compressed.capacity:
        error = CapacityError(
            needed_hours=_hours(needed),
            available_hours=_hours(most_compressed.capacity),
            revision_reserve_hours=_hours(most_compressed.revision_reserve(cap)),
            study_days=off_flags.count(False),
            hours_per_day=hours_per_day,
            min_days_needed=_min_days_needed(
                needed,
                most_compressed.capacity,
                days=days,
                start_date=start_date,
                exam_date=exam_date,
                days_off=days_off,
                cap=cap,
                policy=policy,
            ),
            dropping_allowed=overflow == "drop",
        )
        if overflow == "refuse":
            raise error
        kept, dropped = _drop_to_fit(topics, order, units, most_compressed.capacity, needed)
        if not kept:
            raise error
    kept_units = sum(units[i] for i in kept)
    layout = next(layout for layout in layouts if layout.capacity >= kept_units)

    draft = _Draft(
        topics=topics,
        kept=kept,
        units=units,
        cap=cap,
        policy=policy,
        layout=layout,
        ends_at_exam=ends_at_exam,
        days=[
            _Day(number, date, layout.day_types[i], layout.learn_budgets[i])
            for i, (number, date, _) in enumerate(calendar)
        ],
    )
    draft.add_learning()
    draft.add_revision()
    draft.add_reviews()
    capacity = CapacityReport(
        needed_hours=_hours(needed),
        scheduled_hours=_hours(kept_units),
        available_hours=_hours(layout.capacity),
        revision_reserve_hours=_hours(layout.revision_reserve(cap)),
        study_days=off_flags.count(False),
        learning_days=layout.day_types.count("study"),
        revision_days=layout.day_types.count("revision"),
        days_off=off_flags.count(True),
        adjustments=_adjustments(layout, layouts[0]),
    )
    return ScheduleResult(
        plan=draft.to_plan(exam_name, dropped),
        topics=tuple(topics[i] for i in kept),
        dropped=tuple(dropped),
        capacity=capacity,
    )


def _check_topics(topics: Sequence[SyllabusTopic]) -> None:
    if not topics:
        raise EmptySyllabusError("no topics to plan")
    seen: dict[str, str] = {}
    for topic in topics:
        key = normalise_topic_name(topic.name)
        if not key:
            raise PlanningError(f"topic name {topic.name!r} has no letters or digits")
        if key in seen:
            raise DuplicateTopicError(
                f"topics {seen[key]!r} and {topic.name!r} are the same topic; merge them"
            )
        seen[key] = topic.name


def _drop_to_fit(
    topics: Sequence[SyllabusTopic],
    order: Sequence[int],
    units: Sequence[int],
    capacity: int,
    needed: int,
) -> tuple[list[int], list[DroppedTopic]]:
    dropped_in_order: list[int] = []
    total = needed
    for i in _drop_order(topics, order):
        if total <= capacity:
            break
        dropped_in_order.append(i)
        total -= units[i]
    dropped_ids = set(dropped_in_order)
    # Dropping whole topics overshoots; take back, most important first, what still fits
    # and does not need a dropped topic.
    requires = _requirements(topics)
    for i in reversed(dropped_in_order):
        if total + units[i] <= capacity and not dropped_ids.intersection(requires[i]):
            dropped_ids.discard(i)
            total += units[i]
    reason = (
        f"left out: the syllabus needs {_fmt(_hours(needed))} h of learning and the plan "
        f"holds {_fmt(_hours(capacity))} h; this topic ranks lowest by weight"
    )
    dropped = [
        DroppedTopic(
            name=topics[i].name, weight=topics[i].weight, hours=_hours(units[i]), reason=reason
        )
        for i in order
        if i in dropped_ids
    ]
    return [i for i in order if i not in dropped_ids], dropped


@dataclass
class _Draft:
    """A plan being laid out, day by day, in quarter hours."""

    topics: Sequence[SyllabusTopic]
    kept: list[int]
    """Indexes into ``topics`` of the topics planned, in learning order."""
    units: list[int]
    cap: int
    policy: SchedulePolicy
    layout: _Layout
    ends_at_exam: bool
    days: list[_Day]
    last_learned: dict[int, int] = field(default_factory=dict)
    """Topic -> day number of its last learning session."""
    critical: list[int] = field(default_factory=list)
    priority: dict[int, tuple[float, int]] = field(default_factory=dict)
    """Topic -> sort key, most important first: heavier, then earlier in learning order."""
    kept_names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.priority = {t: (-self.topics[t].weight, pos) for pos, t in enumerate(self.kept)}
        self.kept_names = {normalise_topic_name(self.topics[t].name) for t in self.kept}
        # The 3 to 5 heaviest topics (fewer only when the syllabus is smaller).
        count = min(len(self.kept), 5, max(3, len(self.kept) // 4))
        self.critical = sorted(self.kept, key=self.priority.__getitem__)[:count]

    def add_learning(self) -> None:
        """Spread the topics' learning time evenly over the learning days."""
        learning = [day for day in self.days if day.learn_budget > 0]
        _pack(
            learning,
            [day.learn_budget for day in learning],
            [(topic, self.units[topic]) for topic in self.kept],
            kind="learn",
            min_units=_units(self.policy.min_session_hours),
        )
        for day in self.days:
            for session in day.sessions:
                self.last_learned[session.topic] = day.number

    def _revision_units(self, topic: int) -> int:
        return max(1, math.ceil(self.units[topic] * self.policy.revision_share - 1e-9))

    def add_revision(self) -> None:
        """Fill weekly and final revision days and the recap slot of short plans."""
        priority = self.priority
        previous = 0
        for i in self.layout.weekly_days:
            day = self.days[i]
            learned = [t for t in self.kept if self.last_learned.get(t, day.number) < day.number]
            fresh = [t for t in learned if self.last_learned[t] > previous] or learned
            requests = [(t, self._revision_units(t)) for t in fresh]
            for topic, amount in _fit_to_budget(requests, self.cap, priority):
                day.sessions.append(_Session(topic, "revision", amount, "weekly"))
            previous = day.number
        if self.layout.final_days:
            # Critical topics go last, so they are fresh on the exam day.
            ordered = [t for t in self.kept if t not in self.critical]
            ordered += [t for t in self.kept if t in self.critical]
            requests = [(t, self._revision_units(t)) for t in ordered]
            final_days = [self.days[i] for i in self.layout.final_days]
            granted = _fit_to_budget(requests, self.cap * len(final_days), priority)
            _pack(final_days, [self.cap] * len(final_days), granted, kind="revision", note="final")
        if self.layout.recap_day is not None:
            day = self.days[self.layout.recap_day]
            requests = [(t, 1) for t in self.kept]
            for topic, amount in _fit_to_budget(requests, self.layout.recap_units, priority):
                day.sessions.append(_Session(topic, "revision", amount, "recap"))

    def add_reviews(self) -> None:
        """Put short reviews 1, 3 and 7 days after each topic where a day has room."""
        final_start = (
            self.days[self.layout.final_days[0]].number if self.layout.final_days else math.inf
        )
        learning = [d for d in self.days if d.day_type == "study" and d.number < final_start]
        numbers = [day.number for day in learning]
        review_units = _units(self.policy.review_hours)
        due: list[tuple[int, int, int]] = []
        for pos, topic in enumerate(self.kept):
            if topic in self.last_learned:
                last = self.last_learned[topic]
                due.extend(
                    (last + offset, pos, topic) for offset in self.policy.review_offsets_days
                )
        reviewed: set[tuple[int, int]] = set()
        # Earliest due first, then learning order: the same requests always win the same slots.
        for day_number, _, topic in sorted(due):
            # Topics of more than four hours get a double review.
            amount = review_units * (2 if self.units[topic] > 4 * UNITS_PER_HOUR else 1)
            start = bisect.bisect_left(numbers, day_number)
            for day in learning[start : start + 1 + self.policy.review_slip_days]:
                if (day.number, topic) not in reviewed and self.cap - day.load >= amount:
                    day.sessions.append(_Session(topic, "review", amount))
                    reviewed.add((day.number, topic))
                    break

    def to_plan(self, exam_name: str, dropped: Sequence[DroppedTopic]) -> StudyPlan:
        """Write the draft out as a :class:`StudyPlan` with default themes and rationales."""
        parts: dict[int, int] = {}
        learn_total: dict[int, int] = {}
        for day in self.days:
            for session in day.sessions:
                if session.kind == "learn":
                    parts[session.topic] = parts.get(session.topic, 0) + 1
                    learn_total[session.topic] = learn_total.get(session.topic, 0) + session.units
        part_seen: dict[int, int] = {}
        schedule: list[DailyPlan] = []
        for day in self.days:
            sessions: list[Topic] = []
            for session in day.sessions:
                topic = self.topics[session.topic]
                part: int | None = None
                if session.kind == "learn":
                    part = part_seen[session.topic] = part_seen.get(session.topic, 0) + 1
                sessions.append(
                    Topic(
                        name=topic.name,
                        difficulty=topic.difficulty,
                        rationale=self._rationale(
                            session, day, part, parts, _hours(learn_total.get(session.topic, 0))
                        ),
                        hours=_hours(session.units),
                        kind=session.kind,
                        part=part,
                        parts=parts[session.topic] if part is not None else None,
                    )
                )
            schedule.append(
                DailyPlan(
                    day=day.number,
                    theme=self._theme(day),
                    topics=sessions,
                    estimated_hours=_hours(day.load),
                    date=day.date,
                    day_type=day.day_type,
                )
            )
        critical_names = [self.topics[t].name for t in self.critical]
        return StudyPlan(
            exam_name=exam_name,
            total_days=len(self.days),
            overview=self._overview(schedule, critical_names, dropped, exam_name),
            schedule=schedule,
            critical_topics=critical_names,
            dropped_topics=list(dropped),
        )

    def _rationale(
        self,
        session: _Session,
        day: _Day,
        part: int | None,
        parts: dict[int, int],
        total_hours: float,
    ) -> str:
        topic = self.topics[session.topic]
        critical = session.topic in self.critical
        if session.kind == "review":
            gap = day.number - self.last_learned[session.topic]
            return f"Spaced review {_count(gap, 'day')} after finishing it."
        if session.kind == "revision":
            when = "before the exam" if self.ends_at_exam else "at the end of the plan"
            if session.note == "weekly":
                return "Weekly revision of a topic finished since the last revision."
            if session.note == "recap":
                return f"Recap {when}, heaviest topics first."
            return f"Critical topic: revised last, {when}." if critical else f"Revision {when}."
        pieces = [f"Weight {_fmt(topic.weight)}{' (critical)' if critical else ''}"]
        spread = f"{_fmt(total_hours)} h in total"
        if parts[session.topic] > 1:
            spread += f", part {part} of {parts[session.topic]}"
        pieces.append(spread)
        basis = [
            name for name in topic.prerequisites if normalise_topic_name(name) in self.kept_names
        ]
        if basis:
            pieces.append(f"builds on {_join_names(basis)}")
        return "; ".join(pieces) + "."

    def _theme(self, day: _Day) -> str:
        if day.day_type == "off":
            return "Day off"
        if day.day_type == "revision":
            if any(session.note == "weekly" for session in day.sessions):
                return "Weekly revision"
            return "Final revision before the exam" if self.ends_at_exam else "Final revision"
        learned: list[str] = []
        for session in day.sessions:
            name = self.topics[session.topic].name
            if session.kind == "learn" and name not in learned:
                learned.append(name)
        has_recap = any(session.kind == "revision" for session in day.sessions)
        if learned:
            # "; " because topic names often contain "and" themselves.
            shown = "; ".join(learned[:3]) + (
                f"; {len(learned) - 3} more" if len(learned) > 3 else ""
            )
            return shown + ("; then a recap" if has_recap else "")
        if has_recap:
            return "Recap"
        if day.sessions:
            return "Spaced reviews"
        return "Buffer day: catch up or rest"

    def _overview(
        self,
        schedule: Sequence[DailyPlan],
        critical_names: Sequence[str],
        dropped: Sequence[DroppedTopic],
        exam_name: str,
    ) -> str:
        learn_hours = _hours(sum(self.units[t] for t in self.kept))
        revision_days = sum(1 for day in schedule if day.day_type == "revision")
        off_days = sum(1 for day in schedule if day.day_type == "off")
        offsets = _join_names([str(o) for o in self.policy.review_offsets_days], limit=10)
        count = len(self.kept)
        days_off = f", {_count(off_days, 'day')} off" if off_days else ""
        text = (
            f"{len(schedule)}-day plan{f' for {exam_name}' if exam_name else ''}:"
            f" {_count(count, 'topic')} with {_fmt(learn_hours)} h of learning,"
            f" {_count(revision_days, 'revision day')}"
            f"{days_off}"
            f" and spaced reviews {offsets} days after each topic."
        )
        if critical_names:
            text += f" Critical topics: {_join_names(list(critical_names), limit=5)}."
        if dropped:
            text += f" Left out for lack of time: {_join_names([t.name for t in dropped], 5)}."
        return text
