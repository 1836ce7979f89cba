"""Pasted syllabus text -> a clean topic list, enriched from the registry where names match.

What the parser understands:

- one topic per line, bullets (``-`` ``*`` ``•`` and friends, ``- [ ]`` checkboxes), numbering
  (``1.`` ``1)`` ``(1)`` ``1.2`` ``a)`` ``(b)`` ``iv.``), Markdown headings and bold, and labels
  such as ``Unit 1: Mechanics``, ``CHAPTER 3 - Optics``, ``Weeks 3-4: Trees`` or
  ``Lecture 2 \u2013 Regression`` (the label is dropped; ``Units and Measurements`` is a name);
- nesting by indentation, or by a change of marker style at the same indentation (``a)``
  lines under a ``1.`` line, bullets under a ``Physics:`` line); a line back at a heading's
  indentation after its indented items is that heading's sibling, not its item;
- lists on one line, split at ``;`` and ``,`` (``Heading: a, b, c`` and ``Heading: a; b; c``
  are a heading with items); a name that itself contains a comma (``Work, Energy and
  Power``) stays whole when it is a known registry name or reads like one title
  (``A, B and C``);
- a whole list on one line, numbered or labelled inline (``Part 1: Vectors. Part 2:
  Matrices.``, ``1. Sets 2. Relations``, ``Module 1: Sets; Module 2: Relations``): split at
  each label (two or more of one word) or at numbers that count up;
- prose that lists topics (``The course covers sets, relations and functions``, ``Topics
  include: ...``): the lead-in goes, the list splits at commas and at the ``and`` before its
  last item; later sentences without such a lead-in are remarks and skipped;
- tables: cells split at ``|`` or tabs; number, hours and marks cells and header cells
  dropped;
- copies from PDFs: a word hyphenated across lines and a line ending in a comma, "and" or
  "of" are joined to the next (unmarked, lower-case) line; page numbers, "Page 2 of 4" and
  separator lines are skipped; figures after a name (``(6 hrs)``, ``[10 marks]``, ``(8%)``,
  ``- 6 hours``) are dropped;
- messy whitespace: tabs, non-breaking and zero-width spaces, blank lines.

Which nodes are topics: a leaf is a topic; a node whose children are all leaves is a topic
with those sub-topics; a node that names a subject (``Physics``, ``Organic Chemistry``), a
heading like ``Syllabus`` or ``Contents``, or a node whose children all have children of
their own only groups topics. A lone heading over the whole paste is unwrapped, and so is a
title line over headings that all have items. Duplicates (equal under
:func:`normalise_topic_name`) are merged into the first, sub-topics united.

What is planned (:func:`enrich_topics`, :func:`planned_names`): the items, not the headings.
Each sub-topic of a parsed topic is planned as its own topic named ``"Heading: item"``
(:func:`planned_topic_name`), so every day of a plan says what to study and where it
belongs; a topic without sub-topics is planned as it is.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from services.planner.domain.names import normalise_topic_name
from services.planner.domain.registry import RegistryTopic
from services.planner.domain.topics import (
    DEFAULT_TOPIC_HOURS,
    DEFAULT_TOPIC_WEIGHT,
    HEADING_SEPARATOR,
    SyllabusTopic,
)

__all__ = [
    "HEADING_SEPARATOR",
    "HOURS_PER_SUBTOPIC",
    "MAX_TOPIC_NAME_CHARS",
    "ParsedTopic",
    "enrich_topics",
    "normalise_topic_name",
    "parse_syllabus",
    "planned_names",
    "planned_topic_name",
    "topics_from_registry",
]

MAX_TOPIC_NAME_CHARS = 200
"""Longer items are prose (notes, instructions), not topic names, and are skipped."""
HOURS_PER_SUBTOPIC = 0.5
"""Hours per item under a heading the registry does not know (the items share at least the
default)."""

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
_LABEL_WORDS = (
    r"(unit|chapter|module|section|part|topic|lesson|week|paper|block|theme|lecture|session)"
)
_LABEL_NUMBER = (
    r"(?:\s*[-#]?\s*\d+(?:\.\d+)*(?:\s*[-\u2013&,]\s*\d+)*"  # "3", "#3", "1.2", "1-2"
    r"|(?:\s+|\s*[-#]\s*)(?:[ivxlcdm]+|[a-z]))\b"  # "IV", "A", apart ("Units" is a word)
)
_LABEL_DATE = r"(?:\s*[(\[][^()\[\]]{1,30}[)\]])?"
"""A date or note in brackets after a label: "Week 1 (Sep 5):"."""
_HEADING_PREFIX = re.compile(
    rf"^{_LABEL_WORDS}s?{_LABEL_NUMBER}{_LABEL_DATE}\s*[:.)\-\u2013\u2014]*\s*",
    re.IGNORECASE,
)
_INLINE_LABEL = re.compile(
    rf"(?<![^\s.;,|(]){_LABEL_WORDS}s?{_LABEL_NUMBER}{_LABEL_DATE}\s*[:.)\-\u2013\u2014]",
    re.IGNORECASE,
)
"""A label inside a line ("... Part 2: Matrices"); two or more with one word split the line."""
_INLINE_NUMBER = re.compile(r"(?<![^\s.;,])\(?(\d{1,2})[.)]\s+(?=[^\W\d_])")
"""Inline numbering ("1. Vectors 2. Matrices"); split only where the numbers count up."""
_UNITS = r"(?:%|marks?|hours?|hrs?\.?|h|l|periods?|lectures?|questions?|qs|credits?|weeks?)"
_ANNOTATION = re.compile(
    rf"\s*[(\[]\s*\d+(?:\.\d+)?\s*{_UNITS}\s*[)\]]|\s+[-\u2013\u2014:]\s*\d+(?:\.\d+)?\s*"
    rf"(?:%|marks?|hours?|hrs?\.?|periods?|lectures?)\s*$",
    re.IGNORECASE,
)
"""Figures after a name: "(6 hrs)", "[10 marks]", "(8%)", " - 6 hours" at the end."""
_CHECKBOX = re.compile(r"^\[[ xX\u2713]?\]\s+")
_HYPHENATED = re.compile(r"(?<=[^\W\d_])-$")
_CONTINUED = re.compile(r"(?:,|\b(?:and|of|the|in|to|for|with|on|or|&))$", re.IGNORECASE)
"""A line ending like this was broken by a PDF copy; the next line goes on with it."""
_SENTENCE_END = re.compile(r"(?<=[^\W\d_)])\.\s+(?=[A-Z])")
_LEAD_IN = re.compile(
    r"^(?P<lead>(?:[\w'\u2019-]+[\s,]+){0,8}?)"
    r"(?P<verb>cover(?:s|ed)?|include(?:s|d)?|comprises?|introduces?|deals?\s+with"
    r"|consists?\s+of|focus(?:es)?\s+on|stud(?:y|ies)|learns?(?:\s+about)?|explores?"
    r"|examines?|treats?)\b(?!\s+of\b)"
    r"(?:\s+(?:include|are|is))?(?:\s+the\s+following(?:\s+topics)?)?\s*:?\s+(?P<rest>\S.*)$",
    re.IGNORECASE,
)
"""Prose that lists topics: "The course covers sets, relations and functions"."""
_LEAD_WORDS = frozenset(
    [
        "the",
        "this",
        "that",
        "our",
        "course",
        "module",
        "unit",
        "paper",
        "subject",
        "class",
        "syllabus",
        "exam",
        "examination",
        "test",
        "section",
        "semester",
        "term",
        "programme",
        "program",
        "we",
        "you",
        "students",
        "learners",
        "it",
        "also",
        "will",
        "topics",
        "in",
        "and",
        "then",
        "finally",
        "next",
        "first",
        "later",
        "part",
        "here",
    ]
)
"""Words a prose lead-in is made of; any other word means the verb is part of a name."""
_BARE_LEAD_VERB = re.compile(
    r"(?:covers|includes|comprises|introduces|deals\s+with|consists\s+of|focuses\s+on)$",
    re.IGNORECASE,
)
"""Verbs that start a prose line without a subject ("Covers sets, ..."); no name starts so."""
_BARE_FIGURE = re.compile(
    r"^[(\[]?\d+(?:\.\d+)?\s*(?:%|marks?|hours?|hrs?|h|periods?|lectures?|questions?|qs)?[)\]]?$",
    re.IGNORECASE,
)
"""A cell of a pasted table that is only a number, hours or marks, not a topic."""
_TRAILING = re.compile(r"(?:[\s.,;:\-\u2013\u2014]|\betc\b)+$", re.IGNORECASE)
_LEADING_AND = re.compile(r"^(?:and|&)\s+", re.IGNORECASE)
_COLON = re.compile(r":(?=\s|$)")
"""A colon that ends a heading ("Physics: ..."), not one inside a ratio or a time."""
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
    child_level: int | None = None
    """The indentation level of the node's first child line."""


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
    """Title-case a name written in capitals (``LAWS OF MOTION``, ``ALGEBRA``); keep acronyms
    (``DPSP``, ``NCERT``: one short word, or one with fewer than two vowels)."""
    words = name.split(" ")
    if name.upper() != name or not any(c.isalpha() for c in name):
        return name
    if len(words) == 1 and (len(name) < 6 or sum(c in "AEIOU" for c in name) < 2):
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
        # Every part of a comma list has a word, so no known name spans more parts than
        # its words: this bounds the search for known names inside a long list.
        self.longest_known = max((len(name.split()) for name in self.known), default=0)
        self.sections = _SUBJECT_HEADINGS | {normalise_topic_name(name) for name in sections}

    def is_known(self, text: str) -> bool:
        return normalise_topic_name(text) in self.known

    def is_section(self, name: str) -> bool:
        return self.is_generic(name) or normalise_topic_name(name) in self.sections

    @staticmethod
    def is_generic(name: str) -> bool:
        key = normalise_topic_name(name)
        return key in _GENERIC_HEADINGS or "syllabus" in key.split()

    def comma_items(self, text: str, *, titles: bool = True) -> list[str]:
        """Items of a comma list, keeping names that contain commas whole.

        With ``titles`` false (the list follows a heading), ``A, B and C`` is two items
        unless it is a known name: under "Biotechnology - Recombinant DNA, Applications in
        medicine and agriculture" the list is the unit's items, not one title.
        """
        parts = [part.strip() for part in _split_outside_brackets(text, ",")]
        parts = [part for part in parts if part]
        if len(parts) <= 1 or self.is_known(text):
            return [name] if (name := _clean(text)) else []
        items: list[str] = []
        merged = False
        i = 0
        while i < len(parts):
            # The longest run of parts that is a known name as a whole (commas and all).
            last = min(len(parts), i + self.longest_known)
            end = next(
                (j for j in range(last, i + 1, -1) if self.is_known(", ".join(parts[i:j]))),
                i + 1,
            )
            merged = merged or end > i + 1
            items.append(", ".join(parts[i:end]))
            i = end
        if titles and not merged and len(parts) == 2 and not self.is_known(parts[0]):
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

    def prose_items(self, text: str) -> list[str] | None:
        """Topics of a prose line ("The course covers sets, relations and functions").

        Returns None when the line is not prose. The lead-in words go; the list is split at
        commas and at the ``and`` before its last item (a known name with "and" stays whole).
        """
        items: list[str] = []
        for index, sentence in enumerate(_SENTENCE_END.split(text)):
            match = _prose_lead_in(sentence)
            if match is None:
                if index == 0:
                    return None
                continue  # a remark between the lists ("Emphasis is on proofs.")
            parts = [p.strip() for p in _split_outside_brackets(match.group("rest"), ",")]
            parts = [_LEADING_AND.sub("", p) for p in parts if p]
            if parts and not self.is_known(parts[-1]):
                *head, last = parts
                parts = [*head, *re.split(r"\s+(?:and|&)\s+(?!.*\s(?:and|&)\s)", last)]
            items.extend(_capitalised(name) for part in parts if (name := _clean(part)))
        return items

    def segment_nodes(self, segment: str) -> tuple[list[_Node], bool]:
        """Nodes of one ``;``-separated segment, and whether it is a bare heading."""
        if (prefix := _HEADING_PREFIX.match(segment)) and segment[prefix.end() :].strip():
            segment = segment[prefix.end() :]  # "...; Module 2: Relations"
        match = _COLON.search(segment)
        dash = _SPACED_DASH.search(segment) if not match else None
        if dash and (
            self.is_section(segment[: dash.start()])
            or len(self.comma_items(segment[dash.end() :], titles=False)) > 1
        ):
            # "Biology - Cell, Genetics" (a subject name) and "Cell Biology - Cell
            # structure, cell organelles" (a unit with its items): a heading before a dash.
            match = dash
        left = segment[: match.start()].strip() if match else ""
        if match and left and len(left) <= 80 and _clean(left):
            right = segment[match.end() :].strip()
            if not right:
                return [_Node(_clean(left))], True
            if not self.is_known(segment):
                items = self.comma_items(right, titles=False)
                if len(items) > 1 or self.is_section(left):
                    return [_Node(_clean(left), [_Node(item) for item in items])], False
        return [_Node(item) for item in self.comma_items(segment)], False

    def line_nodes(self, text: str) -> tuple[list[_Node], bool]:
        prose = self.prose_items(text)
        if prose is not None:
            return [_Node(item) for item in prose], False
        segments = [s.strip() for s in _split_outside_brackets(text, ";|\u2022") if s.strip()]
        if len(segments) > 1 and "|" not in text and (headed := self.headed_list(segments)):
            return [headed], False
        nodes: list[_Node] = []
        heading = False
        for segment in segments:
            found, heading = self.segment_nodes(segment)
            nodes.extend(found)
        return nodes, heading and len(nodes) == 1

    def headed_list(self, segments: Sequence[str]) -> _Node | None:
        """``SAT Math: Algebra; Advanced Math; Geometry``: one heading over every segment."""
        match = _COLON.search(segments[0])
        if match is None or any(_COLON.search(segment) for segment in segments[1:]):
            return None
        left, right = segments[0][: match.start()].strip(), segments[0][match.end() :].strip()
        name = _clean(left) if len(left) <= 80 else ""
        if not name or not right:
            return None
        items = [item for segment in (right, *segments[1:]) for item in self.comma_items(segment)]
        return _Node(name, [_Node(item) for item in items])

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


def _prose_lead_in(sentence: str) -> re.Match[str] | None:
    """The lead-in of a sentence that lists topics, or None when it does not start with one."""
    match = _LEAD_IN.match(sentence.strip())
    if match is None:
        return None
    lead = set(match.group("lead").replace(",", " ").lower().split())
    if not lead and not _BARE_LEAD_VERB.match(match.group("verb")):
        return None  # "Study skills", "Cover letters": a name that starts with a verb
    return match if lead <= _LEAD_WORDS else None


def _capitalised(name: str) -> str:
    """A name from prose with a capital first letter ("sets" -> "Sets")."""
    return name[0].upper() + name[1:] if name[0].islower() else name


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


def _cells(raw: str) -> str:
    """A raw line with its inner tabs read as table cell breaks (leading tabs indent)."""
    body = raw.lstrip(" \t")
    if "\t" not in body.strip("\t "):
        return raw
    cells = [cell for cell in body.split("\t") if cell.strip()]
    return raw[: len(raw) - len(body)] + " | ".join(cells)


def _inline_pieces(line: str) -> list[str]:
    """A line holding a whole list with inline labels or numbers, split into its items.

    "Part 1: Vectors. Part 2: Matrices." and "1. Sets 2. Relations 3. Functions" are lists
    pasted onto one line; a single label or number is the line's own marker and stays.
    """
    starts: list[int] = []
    labels = list(_INLINE_LABEL.finditer(line))
    words = {match.group(1).lower() for match in labels}
    if len(labels) >= 2 and len(words) == 1:
        starts = [match.start() for match in labels]
    else:
        expected: int | None = None
        for match in _INLINE_NUMBER.finditer(line):
            number = int(match.group(1))
            if expected is None and (match.start() == 0 or number == 1):
                starts, expected = [match.start()], number + 1
            elif number == expected:
                starts.append(match.start())
                expected += 1
        if len(starts) < 2:
            return [line]
    if starts[0] > 0:
        starts.insert(0, 0)
    bounds = [*starts, len(line)]
    pieces = [line[a:b].strip(" ;,|") for a, b in itertools.pairwise(bounds)]
    return [piece for piece in pieces if piece]


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-blank, non-noise lines with their raw indentation.

    Lines a PDF copy broke are joined again (a word hyphenated at the end of a line, a line
    ending in a comma or "and"/"of" continued by an unmarked lower-case line), and a line
    holding a whole labelled or numbered list is split into one line per item.
    """
    text = _INVISIBLE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    found: list[tuple[int, str]] = []
    for raw in text.split("\n"):
        line = _EMPHASIS.sub("", _ODD_SPACES.sub(" ", _cells(raw).expandtabs(4))).rstrip()
        stripped = line.lstrip()
        if not stripped or _NOISE.match(stripped):
            continue
        if found and stripped[0].islower() and not _read_marker(stripped, ())[0]:
            indent, previous = found[-1]
            if _HYPHENATED.search(previous):
                found[-1] = (indent, previous[:-1] + stripped)
                continue
            if _CONTINUED.search(previous) or _prose_lead_in(previous):
                found[-1] = (indent, f"{previous} {stripped}")
                continue
        found.append((len(line) - len(stripped), stripped))
    return [(indent, piece) for indent, line in found for piece in _inline_pieces(line)]


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
        rest = _CHECKBOX.sub("", rest)
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
        while stack and stack[-1][0] == level and (stack[-1][2].child_level or 0) > level:
            stack.pop()  # back out of a heading whose items were indented: not its item
        parent = stack[-1][2] if stack else root
        if parent.child_level is None:
            parent.child_level = level
        parent.children.extend(nodes)
        stack.append((level, style, nodes[-1]))

    roots = root.children
    if len(roots) >= 3 and not roots[0].children and all(node.children for node in roots[1:]):
        roots = roots[1:]  # a title line over headings that all have items under them
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


@dataclass(frozen=True)
class _StudyUnit:
    """One topic to plan: a parsed topic without sub-topics, or one item under a heading."""

    name: str
    item: str
    heading: ParsedTopic | None


def _study_units(parsed: Sequence[ParsedTopic]) -> list[_StudyUnit]:
    units: list[_StudyUnit] = []
    seen: set[str] = set()
    for topic in parsed:
        found = (
            [_StudyUnit(planned_topic_name(topic.name, s), s, topic) for s in topic.subtopics]
            if topic.subtopics
            else [_StudyUnit(topic.name, topic.name, None)]
        )
        for unit in found:
            key = normalise_topic_name(unit.name)
            if key not in seen:
                seen.add(key)
                units.append(unit)
    return units


def planned_topic_name(heading: str, item: str) -> str:
    """The planned name of an item listed under a heading: ``"Arithmetic: Exponents"``.

    Args:
        heading: The heading as parsed.
        item: The item (a sub-topic of the heading) as parsed.

    Returns:
        Both, so a day of the plan says what to study and where it belongs.
    """
    return f"{heading}{HEADING_SEPARATOR}{item}"


def planned_names(parsed: Sequence[ParsedTopic]) -> list[str]:
    """The topics a parsed syllabus is planned as: the items under each heading, labelled
    with the heading, and the topics listed without items.

    Args:
        parsed: Topics from :func:`parse_syllabus`.

    Returns:
        Topic names in syllabus order, each once (the names :func:`enrich_topics` gives).
    """
    return [unit.name for unit in _study_units(parsed)]


def _registry_match(
    unit: _StudyUnit,
    by_name: dict[str, RegistryTopic],
    by_subtopic: dict[str, RegistryTopic],
    *,
    borrowed: bool,
) -> tuple[RegistryTopic, float, bool] | None:
    """The registry topic a study unit takes its figures from, its hours, and whether it is
    that whole topic."""
    if whole := by_name.get(normalise_topic_name(unit.item)):
        return whole, whole.hours, True
    # An item under a heading the registry knows shares the heading's hours; another exam's
    # heading of the same name may cover other things, so there it lends nothing.
    heading = unit.heading
    if heading and not borrowed and (parent := by_name.get(normalise_topic_name(heading.name))):
        # The share is settled in enrich_topics: two headings may name one registry topic
        # ("Genetics" and "Evolution" are both NEET's "Genetics and Evolution").
        return parent, parent.hours, False
    if parent := by_subtopic.get(normalise_topic_name(unit.item)):
        return parent, parent.hours / max(1, len(parent.subtopics)), False
    return None


def _through_heading(unit: _StudyUnit, match: tuple[RegistryTopic, float, bool]) -> bool:
    """Whether a unit took its registry topic from its heading (not by its own name)."""
    heading = unit.heading
    return (
        heading is not None
        and not match[2]
        and normalise_topic_name(heading.name) in map(normalise_topic_name, match[0].names())
    )


def enrich_topics(
    parsed: Sequence[ParsedTopic],
    registry_topics: Sequence[RegistryTopic] = (),
    *,
    borrowed: bool = False,
) -> list[SyllabusTopic]:
    """The topics to plan, with weights, hours, difficulty and prerequisites from the registry.

    The items under a heading are planned, each as its own topic named after the heading and
    the item (:func:`planned_topic_name`), so every day says what to study; a topic listed
    without items is planned under its own name.

    A topic (or item) that matches a registry topic (name or alias) takes its figures. An
    item under a heading that matches a registry topic takes the heading's weight, difficulty
    and prerequisites and an equal share of its hours (shared with the items of every
    heading that names the same registry topic); one that matches a registry sub-topic
    takes the same from that sub-topic's parent, with an equal share of the parent's hours.
    Prerequisites are rewritten to the names planned, and only those the pasted syllabus
    contains are kept. Topics the registry does not know get default figures: weight 1 and
    2 h; the items of an unknown heading share 2 h or half an hour each, whichever is more.

    Args:
        parsed: Topics from :func:`parse_syllabus`.
        registry_topics: The registry topics in scope (an exam, subject or sub-subject).
        borrowed: The registry topics are another exam's (the student's exam is not in the
            registry): only a topic or item that itself matches takes figures, never
            through its heading, and it keeps the default weight (a weight is importance in
            the lending exam, not in the student's).

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

    units = _study_units(parsed)
    matches = [_registry_match(u, by_name, by_subtopic, borrowed=borrowed) for u in units]
    through_heading: dict[str, int] = {}
    for unit, match in zip(units, matches, strict=True):
        if match is not None and unit.heading and _through_heading(unit, match):
            through_heading[match[0].name] = through_heading.get(match[0].name, 0) + 1
    matches = [
        (m[0], m[0].hours / through_heading[m[0].name], False)
        if m is not None and u.heading and _through_heading(u, m)
        else m
        for u, m in zip(units, matches, strict=True)
    ]
    anchored: dict[str, list[str]] = {}
    for unit, match in zip(units, matches, strict=True):
        if match is not None:
            anchored.setdefault(match[0].name, []).append(unit.name)

    topics: list[SyllabusTopic] = []
    for unit, match in zip(units, matches, strict=True):
        heading = unit.heading.name if unit.heading else None
        if match is None:
            share = len(unit.heading.subtopics) if unit.heading else 1
            topics.append(
                SyllabusTopic(
                    name=unit.name,
                    hours=max(DEFAULT_TOPIC_HOURS, HOURS_PER_SUBTOPIC * share) / share,
                    heading=heading,
                )
            )
            continue
        source, hours, whole = match
        prerequisites = [
            name
            for basis in source.prerequisites
            for name in anchored.get(basis, ())
            if name != unit.name
        ]
        topics.append(
            SyllabusTopic(
                name=unit.name,
                # Weight is importance in the lending exam, not in the student's.
                weight=DEFAULT_TOPIC_WEIGHT if borrowed else source.weight,
                hours=hours,
                difficulty=source.difficulty,
                prerequisites=tuple(dict.fromkeys(prerequisites)),
                subtopics=source.subtopics if whole else (),
                registry_name=source.name,
                heading=heading,
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
