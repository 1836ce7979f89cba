"""What a goal asks of a pasted syllabus: which of its units to weight, and which (only when
the student says so in as many words) to leave out.

The rules:

- A goal that names a pasted heading ("master Cell Biology and Genetics"), a pasted topic or
  item (or the registry's name or alias of the topic it was matched to: "genetics" for a
  pasted "Genetics and Evolution"), or a subject of the exam that the paste spans with others
  ("focus on physics") **weights** those topics: they become the heaviest of the plan, so
  the scheduler learns them first where prerequisites allow, makes them the critical topics
  and trims their revision last. A goal never drops a pasted topic by naming something.
- A pasted topic is **left out** only when the goal asks for it explicitly: ``only`` (or
  *just*, *exclusively*, *solely*) right before or after a name ("only Genetics", "only
  the Genetics unit", "Genetics only") keeps that name's topics and leaves out the rest;
  *skip*, *except*, *excluding*, *without*, *omit*, *leave out*, *apart from*, *other than*
  right before a name leaves out that name's topics. The words that asked are quoted back
  with the topics left out.
- Names are found word for word (:func:`normalise_topic_name`), the longest first, so
  "Cell Biology" is a pasted heading and not the subject *Biology*; a word is part of one
  name at most.
- A goal that asks for an order ("Odes first", "start with Genetics", "day 3") places the
  topics it names: the fix loop moves them (``wished_topics``), and they are not weighted,
  so the scheduler's plan is the one the wish is checked against.
- When a request would leave nothing to plan, nothing is left out and a note says why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.planner.domain.names import normalise_topic_name
from services.planner.domain.registry import ExamSyllabus
from services.planner.domain.topics import SyllabusTopic

_ORDER_CUES = re.compile(
    r"\b(first|firstly|before|after|last|lastly|start(?:ing)?\s+with|begin(?:ning)?\s+with|"
    r"end(?:ing)?\s+with|finish(?:ing)?\s+with|early|earlier|later|then|on\s+day\s+\d+|"
    r"by\s+day\s+\d+|day\s+\d+)\b",
    re.IGNORECASE,
)
ONLY_WORDS = frozenset(["only", "just", "exclusively", "solely"])
"""Words that, next to a name, ask for that name's topics and nothing else."""
SKIP_WORDS = frozenset(
    ["skip", "skipping", "except", "excluding", "exclude", "without", "omit", "omitting"]
)
"""Words that, right before a name, ask to leave its topics out."""
_SKIP_PHRASES = (("leave", "out"), ("leaving", "out"), ("apart", "from"), ("other", "than"))
ONLY_REACH = 3
"""How many words may stand between ``only`` and the name it restricts ("only the Genetics
unit": one; "only focus on Genetics": two)."""
SKIP_REACH = 2
"""How many words may stand between ``skip`` and the name it leaves out."""


@dataclass(frozen=True)
class _Name:
    """A name the goal may use, and the planned topics it stands for."""

    words: tuple[str, ...]
    label: str
    topics: frozenset[str]
    weights: bool = True
    """False for a subject that every registry-placed pasted topic belongs to: naming it
    chooses nothing, so it weights nothing."""


@dataclass(frozen=True)
class GoalFocus:
    """What the goal asks of the pasted topics.

    Attributes:
        weighted: Planned topic names the goal names, to weight.
        left_out: Planned topic names the goal asks to leave out (outside what it asks for
            with ``only``, or what it asks to skip).
        named: The names the goal used that weight topics, as the syllabus or registry
            writes them.
        asked: The goal's words that asked to leave topics out, quoted in the notes.
        notes: What was decided and why, in words for the student.
    """

    weighted: frozenset[str] = frozenset()
    left_out: frozenset[str] = frozenset()
    named: tuple[str, ...] = ()
    asked: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _names(topics: Sequence[SyllabusTopic], exam: ExamSyllabus | None) -> list[_Name]:
    """Every name the goal may use: pasted headings, topics and items, and the exam's
    subjects and sub-subjects."""
    found: dict[tuple[str, ...], _Name] = {}

    def add(label: str, planned: Sequence[str], spellings: Sequence[str] = ()) -> None:
        for spelling in spellings or (label,):
            words = tuple(normalise_topic_name(spelling).split())
            if not words:
                continue
            if words in found:
                old = found[words]
                found[words] = _Name(words, old.label, old.topics | frozenset(planned))
            else:
                found[words] = _Name(words, label, frozenset(planned))

    for topic in topics:
        add(topic.name, [topic.name])
        add(topic.item, [topic.name])
        if topic.heading:
            add(topic.heading, [t.name for t in topics if t.heading == topic.heading])
    if exam is None:
        return list(found.values())
    # Registry topic -> where it belongs (subject key, sub-subject key).
    placed = {t.name: (t.subject, t.sub_subject) for t in exam.topics}
    matched = [t for t in topics if t.registry_name in placed]
    everything = frozenset(t.name for t in topics)
    # The registry's name or alias of a pasted topic ("genetics needs extra care" over a
    # pasted "Genetics and Evolution"): a pasted name of the same words wins.
    for source in exam.topics:
        anchored = frozenset(t.name for t in matched if t.registry_name == source.name)
        for spelling in source.names() if anchored else ():
            words = tuple(normalise_topic_name(spelling).split())
            if words and words not in found:
                found[words] = _Name(words, source.name, anchored)
    for subject in exam.subjects:
        scopes: list[tuple[str, tuple[str, ...], str | None]] = [
            (subject.name, (subject.key, subject.name, *subject.aliases), None)
        ]
        scopes += [(p.name, (p.name, *p.aliases), p.key) for p in subject.sub_subjects]
        for label, spellings, part in scopes:
            inside = frozenset(
                t.name
                for t in matched
                if placed[t.registry_name or ""][0] == subject.key
                and (part is None or placed[t.registry_name or ""][1] == part)
            )
            reaches_beyond = any(t.name not in inside for t in matched)
            for spelling in spellings:
                words = tuple(normalise_topic_name(spelling).split())
                if words and words not in found:  # a pasted name wins over a subject's
                    found[words] = (
                        _Name(words, label, inside)
                        if reaches_beyond
                        else _Name(words, label, everything, weights=False)
                    )
    return list(found.values())


def _only_span(words: Sequence[str], start: int, end: int) -> tuple[int, int] | None:
    """The words that ask for a name and nothing else ("only the Genetics unit"), if any."""
    for i in range(start - 1, max(0, start - ONLY_REACH - 1) - 1, -1):
        if words[i] in ONLY_WORDS:
            return i, end
    if end < len(words) and words[end] in ONLY_WORDS:
        return start, end + 1
    return None


def _skip_span(words: Sequence[str], start: int, end: int) -> tuple[int, int] | None:
    """The words that ask to leave a name out ("skip Ecology", "leave out Evolution")."""
    for i in range(start - 1, max(0, start - SKIP_REACH - 1) - 1, -1):
        if words[i] in SKIP_WORDS:
            return i, end
        if i > 0 and (words[i - 1], words[i]) in _SKIP_PHRASES:
            return i - 1, end
    return None


def asks_for_order(goal: str) -> bool:
    """Whether the goal asks for an order or a day ("Genetics first", "day 3").

    Args:
        goal: The student's goal.

    Returns:
        True when it holds an order cue; the topics it names are then placed, not weighted.
    """
    return _ORDER_CUES.search(goal) is not None


def read_focus(
    goal: str, topics: Sequence[SyllabusTopic], exam: ExamSyllabus | None = None
) -> GoalFocus:
    """What ``goal`` asks of the pasted ``topics``: which to weight, keep only, or skip.

    Args:
        goal: The student's goal.
        topics: The pasted topics as planned (:func:`enrich_topics`).
        exam: The registry exam the paste was matched to, for subject names (None: only
            pasted names count).

    Returns:
        The focus; empty when the goal names none of the topics.
    """
    names = sorted(_names(topics, exam), key=lambda n: -len(n.words))
    words = normalise_topic_name(goal).split()
    claimed = [False] * len(words)
    weighted: set[str] = set()
    only: set[str] = set()
    skipped: set[str] = set()
    named: list[str] = []
    asked: list[str] = []
    only_asked = False
    placing = asks_for_order(goal)
    for name in names:
        size = len(name.words)
        for start in range(len(words) - size + 1):
            end = start + size
            if tuple(words[start:end]) != name.words or any(claimed[start:end]):
                continue
            claimed[start:end] = [True] * size
            if span := _skip_span(words, start, end):
                skipped |= name.topics
                asked.append(" ".join(words[span[0] : span[1]]))
            elif span := _only_span(words, start, end):
                only_asked = True
                only |= name.topics
                asked.append(" ".join(words[span[0] : span[1]]))
            elif name.weights and not placing:
                weighted |= name.topics
                if name.label not in named:
                    named.append(name.label)
    everything = {t.name for t in topics}
    notes: list[str] = []
    if only_asked and not only:
        notes.append(
            "none of your topics is in what the goal asks for only; all of them are planned"
        )
    if only and not (only - skipped):
        notes.append("the goal would leave no topic to plan; all of them are planned")
        only, skipped = set(), set()
    if skipped and not (everything - skipped):
        notes.append("the goal would leave no topic to plan; all of them are planned")
        skipped = set()
    kept = (only or everything) - skipped
    return GoalFocus(
        weighted=frozenset(weighted & kept) if not kept <= weighted else frozenset(),
        left_out=frozenset(everything - kept),
        named=tuple(named),
        asked=tuple(asked),
        notes=tuple(notes),
    )
