"""Which plan topic the autopilot studies next, chosen in code with a reason in words.

The rules, in order:

1. **Only the plan's topics**: ``schedule[].topics[].name`` in plan order, or the
   ``focus_topics`` among them. A model may phrase a reason; it never picks the topic.
2. **Done**: a topic at or above ``mastery_threshold`` is done and not chosen; when every
   topic is done there is no choice (the run completes).
3. **Prerequisites first**: a topic is ready only when each of its prerequisites, direct or
   not, is at ``prerequisite_floor`` or above. Prerequisites are the explicit pairs when
   given (pairs naming other topics are ignored); otherwise the plan's order is the
   prerequisite order (each topic needs the ones before it). Some topic is always ready
   while one is not done: the earliest one below the floor has no prerequisite below it.
4. **Reviews due**: among ready topics, one whose review is due (FSRS due dates, computed
   elsewhere and passed in) goes first, the longest overdue first.
5. **Greatest need**: otherwise the ready topic with the greatest
   ``(1 - mastery) * weight ** (1 + nearness)``, where ``nearness`` grows from 0 to 1 over
   the ``exam_horizon_days`` before the exam, so heavy topics count more as the exam nears.
   With equal weights that is the lowest mastery.

Ties go to the lower mastery, then to the earlier plan position: the same data always gives
the same topic, whatever the order of the mappings passed in.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exammentor.contracts.autopilot import plan_topic_names, topic_key
from exammentor.contracts.plan import StudyPlan
from services.autopilot.domain.errors import PrerequisiteCycleError, RunSetupError
from services.autopilot.domain.policy import DEFAULT_POLICY, AutopilotPolicy

ChoiceRule = Literal["review_due", "greatest_need"]


class PlanTopic(BaseModel):
    """A topic the run may study, with its weight."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)


class TopicChoice(BaseModel):
    """The topic chosen and why."""

    model_config = ConfigDict(frozen=True)

    topic: str
    rule: ChoiceRule
    mastery: float
    reason: str
    """The rule and its numbers in words, e.g. ``lowest mastery 0.31 among 5 plan topics;
    its prerequisite Kinematics is at 0.82``."""


def study_topics(
    plan: StudyPlan,
    *,
    focus_topics: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    policy: AutopilotPolicy = DEFAULT_POLICY,
) -> list[PlanTopic]:
    """The topics a run may study: the plan's, or the focus among them, in plan order.

    Args:
        plan: The study plan.
        focus_topics: Plan topics to keep; ``None`` keeps all of them.
        weights: Topic name -> weight (for example the registry's); topics not named weigh
            ``critical_topic_weight`` when they are among the plan's critical topics, else 1.
        policy: The rules.

    Returns:
        The topics, as the plan spells them, in the order the plan first has them.

    Raises:
        RunSetupError: The plan has no topics, a focus topic is not in the plan, or a weight
            is not a positive number.
    """
    names = plan_topic_names(plan)
    if not names:
        raise RunSetupError("the plan has no topics in schedule[].topics[]")
    if focus_topics is not None:
        wanted = {topic_key(name) for name in focus_topics}
        unknown = sorted(wanted - {topic_key(name) for name in names})
        if unknown or not wanted:
            raise RunSetupError(
                f"focus_topics must be topics of the plan ({len(names)} topics); "
                f"not in it: {', '.join(unknown) or '(empty list)'}"
            )
        names = [name for name in names if topic_key(name) in wanted]
    given = {topic_key(name): weight for name, weight in (weights or {}).items()}
    for name, weight in given.items():
        if not (math.isfinite(weight) and weight > 0):
            raise RunSetupError(f"the weight of {name!r} must be a positive number, not {weight}")
    critical = {topic_key(name) for name in plan.critical_topics}

    def weight_of(name: str) -> float:
        key = topic_key(name)
        return given.get(key, policy.critical_topic_weight if key in critical else 1.0)

    return [PlanTopic(name=name, weight=weight_of(name)) for name in names]


def direct_prerequisites(
    topics: Sequence[PlanTopic], pairs: Sequence[tuple[str, str]] | None
) -> list[list[int]]:
    """For each topic, the indexes of the topics it directly needs.

    Args:
        topics: The run's topics in plan order.
        pairs: ``(prerequisite, topic)`` names; ``None`` makes the plan's order the
            prerequisite order (each topic needs the one before it). Pairs naming a topic
            not among ``topics`` are ignored, and so are pairs of a topic with itself.

    Returns:
        Sorted indexes into ``topics``, one list per topic.

    Raises:
        PrerequisiteCycleError: When the pairs go round in a circle.
    """
    if pairs is None:
        return [[i - 1] if i else [] for i in range(len(topics))]
    index = {topic_key(topic.name): i for i, topic in enumerate(topics)}
    needs: list[set[int]] = [set() for _ in topics]
    for before, after in pairs:
        i, j = index.get(topic_key(before)), index.get(topic_key(after))
        if i is not None and j is not None and i != j:
            needs[j].add(i)
    direct = [sorted(found) for found in needs]
    _refuse_cycles(topics, direct)
    return direct


def _refuse_cycles(topics: Sequence[PlanTopic], direct: Sequence[Sequence[int]]) -> None:
    # Iterative depth-first search: 0 unseen, 1 on the current path, 2 finished.
    state = [0] * len(topics)
    for root in range(len(topics)):
        if state[root]:
            continue
        path = [root]
        pending = [iter(direct[root])]
        state[root] = 1
        while pending:
            step = next(pending[-1], None)
            if step is None:
                state[path.pop()] = 2
                pending.pop()
            elif state[step] == 1:
                start = path.index(step)
                # Reported in learning order: prerequisite first.
                cycle = [topics[i].name for i in reversed([*path[start:], step])]
                raise PrerequisiteCycleError(cycle)
            elif state[step] == 0:
                state[step] = 1
                path.append(step)
                pending.append(iter(direct[step]))


def _all_prerequisites(direct: Sequence[Sequence[int]]) -> list[set[int]]:
    """The transitive closure of ``direct`` (which has no cycles)."""
    closure: list[set[int] | None] = [None] * len(direct)

    def visit(i: int) -> set[int]:
        # Iterative, so a long plan-order chain does not hit the recursion limit.
        stack = [i]
        while stack:
            node = stack[-1]
            missing = [j for j in direct[node] if closure[j] is None]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            if closure[node] is None:
                found: set[int] = set()
                for j in direct[node]:
                    found.add(j)
                    found |= closure[j] or set()
                closure[node] = found
        return closure[i] or set()

    return [visit(i) for i in range(len(direct))]


def _nearness(now: dt.datetime, exam_date: dt.date | None, policy: AutopilotPolicy) -> float:
    if exam_date is None:
        return 0.0
    days_left = (exam_date - now.date()).days
    return min(1.0, max(0.0, 1 - days_left / policy.exam_horizon_days))


def _names(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def choose_topic(
    topics: Sequence[PlanTopic],
    mastery: Mapping[str, float],
    *,
    now: dt.datetime,
    reviews_due: Mapping[str, dt.datetime] | None = None,
    prerequisites: Sequence[tuple[str, str]] | None = None,
    exam_date: dt.date | None = None,
    policy: AutopilotPolicy = DEFAULT_POLICY,
) -> TopicChoice | None:
    """Choose the next topic by the rules of this module.

    Args:
        topics: The run's topics in plan order (:func:`study_topics`).
        mastery: Topic name -> the learner model's mastery, 0 to 1; a topic not named is at
            ``prior_mastery``.
        now: The time of the choice (a review is due when its date is not after it).
        reviews_due: Topic name -> when its FSRS review is due.
        prerequisites: ``(prerequisite, topic)`` pairs; ``None`` uses the plan's order.
        exam_date: The exam's date, if known.
        policy: The rules.

    Returns:
        The topic and the reason, or ``None`` when every topic is done.

    Raises:
        PrerequisiteCycleError: When the pairs go round in a circle.
        ValueError: A mastery outside 0..1.
    """
    known = {topic_key(name): value for name, value in mastery.items()}
    for name, value in known.items():
        if not 0 <= value <= 1:
            raise ValueError(f"mastery of {name!r} must be between 0 and 1, got {value}")
    due_at = {topic_key(name): when for name, when in (reviews_due or {}).items()}
    levels = [known.get(topic_key(t.name), policy.prior_mastery) for t in topics]
    direct = direct_prerequisites(topics, prerequisites)
    closure = _all_prerequisites(direct)
    done = [level >= policy.mastery_threshold for level in levels]
    ready = [
        not done[i] and all(levels[j] >= policy.prerequisite_floor for j in closure[i])
        for i in range(len(topics))
    ]
    candidates = [i for i in range(len(topics)) if ready[i]]
    if not candidates:
        return None
    due = [
        (due_at[key], i)
        for i in candidates
        if (key := topic_key(topics[i].name)) in due_at and due_at[key] <= now
    ]
    nearness = _nearness(now, exam_date, policy)

    def need(i: int) -> float:
        return (1 - levels[i]) * math.pow(topics[i].weight, 1 + nearness)

    if due:
        when, chosen = min(due)
        rule: ChoiceRule = "review_due"
        others = "the only due review" if len(due) == 1 else f"the longest overdue of {len(due)}"
        lead = (
            f"review due since {when.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC, {others} among "
            f"{len(topics)} plan topics; mastery {levels[chosen]:.2f}"
        )
    else:
        chosen = min(candidates, key=lambda i: (-need(i), levels[i], i))
        rule = "greatest_need"
        weakest = min(candidates, key=lambda i: (levels[i], i))
        if levels[weakest] == levels[chosen]:
            lead = f"lowest mastery {levels[chosen]:.2f} among {len(topics)} plan topics"
        else:
            lead = (
                f"greatest need among {len(topics)} plan topics: mastery {levels[chosen]:.2f} "
                f"at weight {topics[chosen].weight:g} outranks the lowest mastery "
                f"{levels[weakest]:.2f} ({topics[weakest].name}, weight "
                f"{topics[weakest].weight:g})"
            )
    clauses = [lead]
    basis = [f"{topics[j].name} at {levels[j]:.2f}" for j in direct[chosen]]
    if len(basis) == 1:
        clauses.append(f"its prerequisite {basis[0].replace(' at ', ' is at ', 1)}")
    elif basis:
        clauses.append(f"its prerequisites {_names(basis[:3])}")
    finished = sum(done)
    if finished:
        clauses.append(f"{finished} done at {policy.mastery_threshold:.2f} or above")
    waiting = len(topics) - finished - len(candidates)
    if waiting:
        clauses.append(f"{waiting} wait for prerequisites")
    if exam_date is not None:
        days_left = (exam_date - now.date()).days
        left = f"{days_left} day{'' if days_left == 1 else 's'}"
        clauses.append(f"exam in {left} (weight power {1 + nearness:.2f})")
    return TopicChoice(
        topic=topics[chosen].name, rule=rule, mastery=levels[chosen], reason="; ".join(clauses)
    )
