"""Pasted syllabus text -> a clean topic list, enriched from the registry where names match.

What the parser understands:

- one topic per line, bullets (``-`` ``*`` ``•`` and friends), numbering (``1.`` ``1)``
  ``(1)`` ``1.2`` ``a)`` ``(b)`` ``iv.``), Markdown headings and bold, and headings such as
  ``Unit 1: Mechanics`` or ``CHAPTER 3 - Optics`` (the ``Unit 1`` part is dropped);
- nesting by indentation, or by a change of marker style at the same indentation (``a)``
  lines under a ``1.`` line, bullets under a ``Physics:`` line);
- lists on one line, split at ``;`` and ``,`` (``Heading: a, b, c`` is a topic with
  sub-topics); a name that itself contains a comma (``Work, Energy and Power``) stays whole
  when it is a known registry name or reads like one title (``A, B and C``);
- messy whitespace: tabs, non-breaking and zero-width spaces, blank lines, page numbers and
  separator lines.

Which nodes are topics: a leaf is a topic; a node whose children are all leaves is a topic
with those sub-topics; a node that names a subject (``Physics``, ``Organic Chemistry``), a
heading like ``Syllabus`` or ``Contents``, or a node whose children all have children of
their own only groups topics. A lone heading over the whole paste is unwrapped. Duplicates
(equal under :func:`normalise_topic_name`) are merged into the first, sub-topics united.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from services.planner.domain.names import normalise_topic_name
from services.planner.domain.registry import RegistryTopic
from services.planner.domain.topics import DEFAULT_TOPIC_HOURS, SyllabusTopic

__all__ = [
    "HOURS_PER_SUBTOPIC",
    "MAX_TOPIC_NAME_CHARS",
    "ParsedTopic",
    "enrich_topics",
    "narrow_to_scope",
    "normalise_topic_name",
    "parse_syllabus",
    "topics_from_registry",
]

MAX_TOPIC_NAME_CHARS = 200
"""Longer items are prose (notes, instructions), not topic names, and are skipped."""
HOURS_PER_SUBTOPIC = 0.5
"""Hours per listed sub-topic of a topic the registry does not know (at least the default)."""

_SUBJECT_HEADINGS = frozenset(
    normalise_topic_name(name)
    for name in (
        "physics",
        "chemistry",
        "biology",
        "botany",
        "zoology",
        "mathematics",
        "maths",
        "math",
        "history",
        "geography",
        "polity",
        "economy",
        "economics",
        "english",
        "general studies",
        "physical chemistry",
        "organic chemistry",
        "inorganic chemistry",
        "quantitative aptitude",
    )
)
"""Headings that group topics when they have lines under them; alone they are a topic."""
_GENERIC_HEADINGS = frozenset(
    normalise_topic_name(name)
    for name in (
        "topics",
        "contents",
        "table of contents",
        "chapters",
        "units",
        "important topics",
        "course content",
        "course contents",
        "course outline",
        "outline",
        # Header cells of a pasted table.
        "s no",
        "sl no",
        "sr no",
        "no",
        "unit",
        "topic",
        "chapter",
        "unit name",
        "topic name",
        "chapter name",
        "hours",
        "marks",
        "weightage",
        "periods",
        "duration",
    )
)
"""Headings that are never a topic (nor is any line with the word "syllabus")."""

_INVISIBLE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")
_ODD_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_EMPHASIS = re.compile(r"\*\*|__|`")
_NOISE = re.compile(r"^(?:[\W_]+|(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?)$", re.IGNORECASE)
_BULLET = re.compile(
    "^([-*+\u2022\u25cf\u25a0\u25ba\u25b6\u27a2\u27a4\u2192\u2713\u2714\u2756\u25c6]"
    "|[\u25e6\u25cb\u25aa\u25ab\u2023\u2043\u2219\u00b7\u2013\u2014\u25a1\u25c7\u25b8])\\s*"
)
_SUB_BULLETS = "\u25e6\u25cb\u25aa\u25ab\u2023\u2043\u2219\u00b7\u2013\u2014\u25a1\u25c7\u25b8"
"""Hollow and small bullets, which mark a level below ``-``, ``*`` and ``\u2022``."""
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s*")
_DECIMAL = re.compile(r"^\(?(\d+(?:\.\d+)+)\.?\)?\s+")
_NUMBER = re.compile(r"^(\()?(\d+)\s*([.)\]])\s*")
_ROMAN_NUMERALS = "i ii iii iv v vi vii viii ix x xi xii xiii xiv xv xvi xvii xviii xix xx"
_ROMAN = re.compile(
    rf"^(\()?({'|'.join(sorted(_ROMAN_NUMERALS.split(), key=len, reverse=True))})([.)])\s+",
    re.IGNORECASE,
)
_LETTER = re.compile(r"^(\()?([a-zA-Z])([.)])\s+")
_HEADING_PREFIX = re.compile(
    r"^(unit|chapter|module|section|part|topic|lesson|week|paper|block|theme)\s*[-#]?\s*"
    r"(?:\d+(?:\.\d+)*|[ivxlcdm]+|[a-z])\b\s*[:.)\-\u2013\u2014]*\s*",
    re.IGNORECASE,
)
_ANNOTATION = re.compile(
    r"\s*[(\[]\s*\d+(?:\.\d+)?\s*(?:%|marks?|hours?|hrs?|h|periods?|lectures?|questions?|qs)"
    r"\s*[)\]]\s*$",
    re.IGNORECASE,
)
_BARE_FIGURE = re.compile(
    r"^[(\[]?\d+(?:\.\d+)?\s*(?:%|marks?|hours?|hrs?|h|periods?|lectures?|questions?|qs)?[)\]]?$",
    re.IGNORECASE,
)
"""A cell of a pasted table that is only a number, hours or marks, not a topic."""
_TRAILING = re.compile(r"(?:[\s.,;:\-\u2013\u2014]|\betc\b)+$", re.IGNORECASE)
_LEADING_AND = re.compile(r"^(?:and|&)\s+", re.IGNORECASE)
_SPACED_DASH = re.compile(r"\s[-\u2013\u2014]\s")
_SMALL_WORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with"]
)


class ParsedTopic(BaseModel):
    """A topic read from a pasted syllabus."""

    model_config = ConfigDict(frozen=True)

    name: str
    subtopics: tuple[str, ...] = ()


@dataclass
class _Node:
    name: str
    children: list[_Node] = field(default_factory=list)


def _clean(text: str) -> str:
    """A name without annotations, trailing punctuation or doubled spaces ('' if unusable)."""
    name = " ".join(text.split())
    name = _ANNOTATION.sub("", name)
    name = _TRAILING.sub("", name).strip(" \"'")
    if (
        len(name) > MAX_TOPIC_NAME_CHARS
        or _BARE_FIGURE.match(name)
        or not normalise_topic_name(name)
    ):
        return ""
    return _tidy_case(name)


def _tidy_case(name: str) -> str:
    """Title-case a name written in capitals (``LAWS OF MOTION``); keep acronyms (``DPSP``)."""
    words = name.split(" ")
    if len(words) < 2 or name.upper() != name or not any(c.isalpha() for c in name):
        return name
    tidy = [
        word.lower() if i and word.lower() in _SMALL_WORDS else word.capitalize()
        for i, word in enumerate(words)
    ]
    return " ".join(tidy)


def _split_outside_brackets(text: str, separators: str) -> list[str]:
    """Split at separator characters that are not inside brackets or between digits."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif char in separators and depth == 0:
            between_digits = (
                0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            )
            if not between_digits:
                parts.append(text[start:i])
                start = i + 1
    parts.append(text[start:])
    return parts


class _Reader:
    """Turns lines into a tree of nodes, then the tree into topics."""

    def __init__(self, known: Collection[str], sections: Collection[str]) -> None:
        self.known = {normalise_topic_name(name) for name in known}
        self.sections = _SUBJECT_HEADINGS | {normalise_topic_name(name) for name in sections}

    def is_known(self, text: str) -> bool:
        return normalise_topic_name(text) in self.known

    def is_section(self, name: str) -> bool:
        return self.is_generic(name) or normalise_topic_name(name) in self.sections

    @staticmethod
    def is_generic(name: str) -> bool:
        key = normalise_topic_name(name)
        return key in _GENERIC_HEADINGS or "syllabus" in key.split()

    def comma_items(self, text: str) -> list[str]:
        """Items of a comma list, keeping names that contain commas whole."""
        parts = [part.strip() for part in _split_outside_brackets(text, ",")]
        parts = [part for part in parts if part]
        if len(parts) <= 1 or self.is_known(text):
            return [name] if (name := _clean(text)) else []
        items: list[str] = []
        merged = False
        i = 0
        while i < len(parts):
            # The longest run of parts that is a known name as a whole (commas and all).
            end = next(
                (j for j in range(len(parts), i + 1, -1) if self.is_known(", ".join(parts[i:j]))),
                i + 1,
            )
            merged = merged or end > i + 1
            items.append(", ".join(parts[i:end]))
            i = end
        if not merged and len(parts) == 2 and not self.is_known(parts[0]):
            second = parts[1].lower()
            if (
                (" and " in f" {second} " or "&" in second)
                and not _LEADING_AND.match(parts[1])
                and len(text.split()) <= 8
            ):
                # "Work, Energy and Power": one title, not two topics.
                return [name] if (name := _clean(text)) else []
        cleaned = [_clean(_LEADING_AND.sub("", item)) for item in items]
        return [item for item in cleaned if item]

    def segment_nodes(self, segment: str) -> tuple[list[_Node], bool]:
        """Nodes of one ``;``-separated segment, and whether it is a bare heading."""
        match = re.search(r":(?=\s|$)", segment)
        dash = _SPACED_DASH.search(segment)
        if not match and dash and self.is_section(segment[: dash.start()]):
            match = dash  # "Biology - Cell, Genetics": a dash after a subject name
        left = segment[: match.start()].strip() if match else ""
        if match and left and len(left) <= 80 and _clean(left):
            right = segment[match.end() :].strip()
            if not right:
                return [_Node(_clean(left))], True
            if not self.is_known(segment):
                items = self.comma_items(right)
                if len(items) > 1 or self.is_section(left):
                    return [_Node(_clean(left), [_Node(item) for item in items])], False
        return [_Node(item) for item in self.comma_items(segment)], False

    def line_nodes(self, text: str) -> tuple[list[_Node], bool]:
        segments = _split_outside_brackets(text, ";|\u2022")
        nodes: list[_Node] = []
        heading = False
        for segment in segments:
            if segment.strip():
                found, heading = self.segment_nodes(segment.strip())
                nodes.extend(found)
        return nodes, heading and len(nodes) == 1

    def collect(self, nodes: Iterable[_Node], out: list[tuple[str, list[str]]]) -> None:
        for node in nodes:
            if not node.children:
                if not self.is_generic(node.name):
                    out.append((node.name, []))
            elif self.is_section(node.name) or (
                len(node.children) > 1 and all(child.children for child in node.children)
            ):
                self.collect(node.children, out)
            else:
                out.append((node.name, list(_descendants(node))))


def _descendants(node: _Node) -> Iterable[str]:
    for child in node.children:
        yield child.name
        yield from _descendants(child)


def _read_marker(
    text: str, open_styles: Collection[tuple[str, ...]]
) -> tuple[tuple[str, ...], str]:
    """The marker style of a line and the text after the marker."""
    if match := _MARKDOWN_HEADING.match(text):
        return ("markdown", str(len(match.group(1)))), text[match.end() :]
    if match := _DECIMAL.match(text):
        return ("decimal", str(match.group(1).count("."))), text[match.end() :]
    if match := _NUMBER.match(text):
        return ("number", match.group(1) or "", match.group(3)), text[match.end() :]
    roman = _ROMAN.match(text)
    letter = _LETTER.match(text)
    if roman and letter:
        # "i." is a numeral unless a lettered list (a., b., ...) of the same form is open.
        case = "upper" if letter.group(2).isupper() else "lower"
        as_letter = ("letter", case, letter.group(1) or "", letter.group(3))
        if as_letter in open_styles:
            return as_letter, text[letter.end() :]
    if roman:
        case = "upper" if roman.group(2).isupper() else "lower"
        return ("roman", case, roman.group(1) or "", roman.group(3)), text[roman.end() :]
    if letter:
        case = "upper" if letter.group(2).isupper() else "lower"
        return ("letter", case, letter.group(1) or "", letter.group(3)), text[letter.end() :]
    if match := _BULLET.match(text):
        # "-" and "*" mixed at one indentation are the same list; "\u25e6" is a level below.
        level = "sub" if match.group(1) in _SUB_BULLETS else "main"
        return ("bullet", level), text[match.end() :]
    return (), text


def _indent_levels(indents: Iterable[int]) -> dict[int, int]:
    """Map raw indentation to levels; indents one space apart are the same level."""
    levels: dict[int, int] = {}
    level = -1
    previous: int | None = None
    for indent in sorted(set(indents)):
        if previous is None or indent - previous > 1:
            level += 1
        levels[indent] = level
        previous = indent
    return levels


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-blank, non-noise lines with their raw indentation."""
    text = _INVISIBLE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    found: list[tuple[int, str]] = []
    for raw in text.split("\n"):
        line = _EMPHASIS.sub("", _ODD_SPACES.sub(" ", raw.expandtabs(4))).rstrip()
        stripped = line.lstrip()
        if stripped and not _NOISE.match(stripped):
            found.append((len(line) - len(stripped), stripped))
    return found


def parse_syllabus(
    text: str, *, known_topics: Collection[str] = (), section_names: Collection[str] = ()
) -> list[ParsedTopic]:
    """Read a pasted syllabus into a clean, de-duplicated topic list.

    Args:
        text: The syllabus as pasted.
        known_topics: Names that are one topic even with commas in them (pass the registry's
            :meth:`~services.planner.domain.registry.SyllabusRegistry.vocabulary`).
        section_names: Headings that group topics rather than being one (pass the
            registry's subject names); common subject names are known already.

    Returns:
        Topics in the order they first appear, each with its sub-topics.
    """
    reader = _Reader(known_topics, section_names)
    raw_lines = _lines(text)
    levels = _indent_levels(indent for indent, _ in raw_lines)
    root = _Node("")
    stack: list[tuple[int, tuple[str, ...], _Node]] = []
    for indent, line in raw_lines:
        level = levels[indent]
        style, rest = _read_marker(line, [entry[1] for entry in stack])
        if prefix := _HEADING_PREFIX.match(rest):
            heading_rest = rest[prefix.end() :]
            rest = heading_rest or rest  # "Unit 1" alone keeps its words as its name
            style = style or ("heading", prefix.group(1).lower())
        nodes, bare_heading = reader.line_nodes(rest)
        if not nodes:
            continue
        if not style:
            style = ("colon",) if bare_heading else ("plain",)
        while stack and stack[-1][0] > level:
            stack.pop()
        same = [i for i, entry in enumerate(stack) if entry[0] == level and entry[1] == style]
        if same:
            del stack[same[-1] :]  # a sibling of that entry
        parent = stack[-1][2] if stack else root
        parent.children.extend(nodes)
        stack.append((level, style, nodes[-1]))

    roots = root.children
    while len(roots) == 1 and roots[0].children:
        roots = roots[0].children  # one heading over everything is a title, not a topic
    collected: list[tuple[str, list[str]]] = []
    reader.collect(roots, collected)
    return _merge(collected)


def _merge(collected: Iterable[tuple[str, list[str]]]) -> list[ParsedTopic]:
    names: dict[str, str] = {}
    subtopics: dict[str, dict[str, str]] = {}
    for name, children in collected:
        key = normalise_topic_name(name)
        if not key:
            continue
        names.setdefault(key, name)
        merged = subtopics.setdefault(key, {})
        for child in children:
            child_key = normalise_topic_name(child)
            if child_key and child_key != key:
                merged.setdefault(child_key, child)
    return [
        ParsedTopic(name=name, subtopics=tuple(subtopics[key].values()))
        for key, name in names.items()
    ]


def enrich_topics(
    parsed: Sequence[ParsedTopic], registry_topics: Sequence[RegistryTopic] = ()
) -> list[SyllabusTopic]:
    """Give parsed topics weights, hours, difficulty and prerequisites from the registry.

    A parsed topic that matches a registry topic (name or alias) takes its figures. One that
    matches a registry sub-topic takes the parent's weight, difficulty and prerequisites and
    an equal share of its hours. Prerequisites are rewritten to the names the student used,
    and only those the pasted syllabus contains are kept. Topics the registry does not know
    get default figures: weight 1, and 2 h or half an hour per listed sub-topic, whichever
    is more.

    Args:
        parsed: Topics from :func:`parse_syllabus`.
        registry_topics: The registry topics in scope (an exam, subject or sub-subject).

    Returns:
        Topics for the scheduler, in the parsed order.
    """
    by_name: dict[str, RegistryTopic] = {}
    for topic in registry_topics:
        by_name.setdefault(normalise_topic_name(topic.name), topic)
    for topic in registry_topics:
        for alias in topic.aliases:
            by_name.setdefault(normalise_topic_name(alias), topic)
    by_subtopic: dict[str, RegistryTopic] = {}
    for topic in registry_topics:
        for subtopic in topic.subtopics:
            by_subtopic.setdefault(normalise_topic_name(subtopic), topic)

    anchors: list[tuple[RegistryTopic, bool] | None] = []
    anchored: dict[str, list[str]] = {}
    for item in parsed:
        key = normalise_topic_name(item.name)
        match = by_name.get(key)
        anchor = (match, True) if match else None
        if anchor is None and key in by_subtopic:
            anchor = (by_subtopic[key], False)
        anchors.append(anchor)
        if anchor is not None:
            anchored.setdefault(anchor[0].name, []).append(item.name)

    topics: list[SyllabusTopic] = []
    for item, anchor in zip(parsed, anchors, strict=True):
        if anchor is None:
            topics.append(
                SyllabusTopic(
                    name=item.name,
                    hours=max(DEFAULT_TOPIC_HOURS, HOURS_PER_SUBTOPIC * len(item.subtopics)),
                    subtopics=item.subtopics,
                )
            )
            continue
        source, is_whole = anchor
        prerequisites = [
            name
            for basis in source.prerequisites
            for name in anchored.get(basis, ())
            if name != item.name
        ]
        topics.append(
            SyllabusTopic(
                name=item.name,
                weight=source.weight,
                hours=source.hours if is_whole else source.hours / max(1, len(source.subtopics)),
                difficulty=source.difficulty,
                prerequisites=tuple(dict.fromkeys(prerequisites)),
                subtopics=item.subtopics or (source.subtopics if is_whole else ()),
                registry_name=source.name,
            )
        )
    return topics


def topics_from_registry(registry_topics: Sequence[RegistryTopic]) -> list[SyllabusTopic]:
    """The registry's own topics as scheduler input, for requests without a pasted syllabus.

    Args:
        registry_topics: The registry topics in scope.

    Returns:
        Topics in registry order; prerequisites outside the scope left out.
    """
    in_scope = {topic.name for topic in registry_topics}
    return [
        topic.to_syllabus_topic().model_copy(
            update={"prerequisites": tuple(p for p in topic.prerequisites if p in in_scope)}
        )
        for topic in registry_topics
    ]


def narrow_to_scope(
    topics: Sequence[SyllabusTopic], registry_topics: Sequence[RegistryTopic]
) -> tuple[list[SyllabusTopic], list[SyllabusTopic]]:
    """Split enriched topics into those inside a registry scope and the rest.

    A topic is inside when it was matched to one of ``registry_topics``; topics the registry
    does not know are outside, so the caller decides whether to keep them.

    Args:
        topics: Topics from :func:`enrich_topics` (enriched against the whole exam).
        registry_topics: The registry topics of the scope (a subject or sub-subject).

    Returns:
        ``(inside, outside)``, each in the given order.
    """
    names = {topic.name for topic in registry_topics}
    inside = [topic for topic in topics if topic.registry_name in names]
    outside = [topic for topic in topics if topic.registry_name not in names]
    return inside, outside
