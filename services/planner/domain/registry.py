"""Syllabus registry: exams, subjects, sub-subjects and topics, kept as TOML data files.

The built-in files live in ``services/planner/syllabi/`` (one per exam). An operator adds or
overrides exams without code by pointing the planner at more directories: files are read in
order (built-in first, then each extra directory, files sorted by name), and a later file
with the same ``exam`` key replaces whole subjects and adds new ones.

Every registry is checked when it is built: topic names unique within a subject (aliases
included), every prerequisite names a topic of the same subject, and prerequisites acyclic.
A bad file stops the planner at start-up with an error that names the file and the problem.

Names are matched with :func:`normalise_topic_name`, so keys, names and aliases are found
whatever their case or punctuation.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exammentor.contracts.plan import Difficulty
from services.planner.domain.errors import RegistryError, UnknownScopeError
from services.planner.domain.names import normalise_topic_name
from services.planner.domain.topics import SyllabusTopic

BUILTIN_SYLLABI_DIR = Path(__file__).resolve().parent.parent / "syllabi"
"""Directory of the registry files that ship with the planner."""


class _TopicEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    weight: float = Field(gt=0, le=100, allow_inf_nan=False)
    hours: float = Field(gt=0, le=1000, allow_inf_nan=False)
    difficulty: Difficulty = "medium"
    prerequisites: tuple[str, ...] = ()
    subtopics: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


class _SubSubjectEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    topics: tuple[_TopicEntry, ...] = Field(min_length=1)


class _SubjectEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    topics: tuple[_TopicEntry, ...] = ()
    sub_subjects: dict[str, _SubSubjectEntry] = Field(default_factory=dict)


class _ExamFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    exam: str = Field(min_length=1)
    name: str | None = None
    aliases: tuple[str, ...] = ()
    subjects: dict[str, _SubjectEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class RegistryTopic:
    """A topic of the registry, with where it belongs.

    Attributes:
        name: The topic's name as the registry writes it.
        weight: Relative importance within the exam.
        hours: Study hours for a first pass.
        difficulty: easy, medium or hard.
        prerequisites: Names of topics of the same subject to learn first (canonical names,
            aliases already resolved).
        subtopics: What the topic contains.
        aliases: Other names the topic is found by.
        exam: Exam key.
        subject: Subject key.
        sub_subject: Sub-subject key, if the subject has sub-subjects.
    """

    name: str
    weight: float
    hours: float
    difficulty: Difficulty
    prerequisites: tuple[str, ...]
    subtopics: tuple[str, ...]
    aliases: tuple[str, ...]
    exam: str
    subject: str
    sub_subject: str | None

    def names(self) -> Iterator[str]:
        """The topic's name and its aliases."""
        yield self.name
        yield from self.aliases

    def to_syllabus_topic(self) -> SyllabusTopic:
        """The topic as the scheduler takes it.

        Returns:
            A :class:`SyllabusTopic` enriched from this entry.
        """
        return SyllabusTopic(
            name=self.name,
            weight=self.weight,
            hours=self.hours,
            difficulty=self.difficulty,
            prerequisites=self.prerequisites,
            subtopics=self.subtopics,
            registry_name=self.name,
        )


@dataclass(frozen=True)
class SubSubjectSyllabus:
    """A part of a subject, e.g. NEET chemistry's ``organic``."""

    key: str
    name: str
    aliases: tuple[str, ...]
    topics: tuple[RegistryTopic, ...]


@dataclass(frozen=True)
class SubjectSyllabus:
    """A subject of an exam with its own topics and its sub-subjects' topics."""

    key: str
    name: str
    aliases: tuple[str, ...]
    own_topics: tuple[RegistryTopic, ...]
    sub_subjects: tuple[SubSubjectSyllabus, ...]
    source: str

    @property
    def topics(self) -> tuple[RegistryTopic, ...]:
        """Every topic of the subject, its own first, then each sub-subject's in order."""
        return self.own_topics + tuple(t for part in self.sub_subjects for t in part.topics)


@dataclass(frozen=True)
class ExamSyllabus:
    """An exam and its subjects."""

    key: str
    name: str
    aliases: tuple[str, ...]
    subjects: tuple[SubjectSyllabus, ...]

    @property
    def topics(self) -> tuple[RegistryTopic, ...]:
        """Every topic of the exam, subject by subject."""
        return tuple(topic for subject in self.subjects for topic in subject.topics)


@dataclass(frozen=True)
class Scope:
    """A part of the registry, by canonical keys (``subject=None`` means the whole exam)."""

    exam: str
    subject: str | None = None
    sub_subject: str | None = None


def _matches(query: str, key: str, name: str, aliases: Iterable[str]) -> bool:
    wanted = normalise_topic_name(query)
    return any(normalise_topic_name(candidate) == wanted for candidate in (key, name, *aliases))


class SyllabusRegistry:
    """The exams the planner knows, looked up by key, name or alias."""

    def __init__(self, exams: Iterable[ExamSyllabus]) -> None:
        """Wrap exams that were already checked (use :func:`build_registry` to make one).

        Args:
            exams: The exams, in the order they should be listed.
        """
        self._exams = tuple(exams)

    @property
    def exams(self) -> tuple[ExamSyllabus, ...]:
        """All exams."""
        return self._exams

    def find_exam(self, exam: str) -> ExamSyllabus | None:
        """Find an exam by key, display name or alias.

        Args:
            exam: What a request or the router called the exam.

        Returns:
            The exam, or ``None`` when the registry does not know it.
        """
        for candidate in self._exams:
            if _matches(exam, candidate.key, candidate.name, candidate.aliases):
                return candidate
        return None

    def exam(self, exam: str) -> ExamSyllabus:
        """Find an exam by key, display name or alias.

        Args:
            exam: What a request or the router called the exam.

        Returns:
            The exam.

        Raises:
            UnknownScopeError: The registry does not know the exam.
        """
        found = self.find_exam(exam)
        if found is None:
            raise UnknownScopeError(
                f"unknown exam {exam!r}", [candidate.key for candidate in self._exams]
            )
        return found

    def resolve_scope(
        self, exam: str, subject: str | None = None, sub_subject: str | None = None
    ) -> Scope:
        """Turn names from a request or the router into canonical registry keys.

        This is the cross-check of the router's answer: a scope the registry does not know
        raises instead of being taken on the model's word.

        Args:
            exam: Exam key, name or alias.
            subject: Subject key, name or alias; ``None`` or empty for the whole exam.
            sub_subject: Sub-subject key, name or alias; ``None`` or empty for the whole
                subject.

        Returns:
            The scope in canonical keys.

        Raises:
            UnknownScopeError: Any level the registry does not know, with the known keys;
                also a sub-subject given without a subject.
        """
        found_exam = self.exam(exam)
        if not subject:
            if sub_subject:
                raise UnknownScopeError(
                    f"sub-subject {sub_subject!r} given without a subject",
                    [s.key for s in found_exam.subjects],
                )
            return Scope(found_exam.key)
        found_subject = next(
            (s for s in found_exam.subjects if _matches(subject, s.key, s.name, s.aliases)),
            None,
        )
        if found_subject is None:
            raise UnknownScopeError(
                f"unknown subject {subject!r} for {found_exam.key}",
                [s.key for s in found_exam.subjects],
            )
        if not sub_subject:
            return Scope(found_exam.key, found_subject.key)
        part = next(
            (
                p
                for p in found_subject.sub_subjects
                if _matches(sub_subject, p.key, p.name, p.aliases)
            ),
            None,
        )
        if part is None:
            raise UnknownScopeError(
                f"unknown sub-subject {sub_subject!r} for {found_exam.key}/{found_subject.key}",
                [p.key for p in found_subject.sub_subjects],
            )
        return Scope(found_exam.key, found_subject.key, part.key)

    def topics(
        self, exam: str, subject: str | None = None, sub_subject: str | None = None
    ) -> tuple[RegistryTopic, ...]:
        """The topics of an exam, a subject or a sub-subject.

        Args:
            exam: Exam key, name or alias.
            subject: Subject, or ``None`` for the whole exam.
            sub_subject: Sub-subject, or ``None`` for the whole subject.

        Returns:
            The topics in registry order.

        Raises:
            UnknownScopeError: See :meth:`resolve_scope`.
        """
        scope = self.resolve_scope(exam, subject, sub_subject)
        found_exam = self.exam(scope.exam)
        if scope.subject is None:
            return found_exam.topics
        found_subject = next(s for s in found_exam.subjects if s.key == scope.subject)
        if scope.sub_subject is None:
            return found_subject.topics
        return next(p for p in found_subject.sub_subjects if p.key == scope.sub_subject).topics

    def vocabulary(self, exam: str | None = None) -> frozenset[str]:
        """Normalised topic names, aliases and sub-topics, for the syllabus parser.

        Args:
            exam: Limit to one exam; ``None`` for all.

        Returns:
            The names a pasted line may be as a whole (commas and all).
        """
        exams = self._exams if exam is None else (self.exam(exam),)
        words: set[str] = set()
        for found in exams:
            for topic in found.topics:
                words.update(normalise_topic_name(name) for name in topic.names())
                words.update(normalise_topic_name(name) for name in topic.subtopics)
        return frozenset(words)

    def section_names(self, exam: str | None = None) -> frozenset[str]:
        """Normalised subject and sub-subject names, keys and aliases.

        A heading in a pasted syllabus that is one of these groups topics; it is not a topic.

        Args:
            exam: Limit to one exam; ``None`` for all.

        Returns:
            The names.
        """
        exams = self._exams if exam is None else (self.exam(exam),)
        words: set[str] = set()
        for found in exams:
            for subject in found.subjects:
                words.update(
                    normalise_topic_name(w) for w in (subject.key, subject.name, *subject.aliases)
                )
                for part in subject.sub_subjects:
                    words.update(normalise_topic_name(w) for w in (part.name, *part.aliases))
        return frozenset(words)


def _parse_document(source: str, text: str) -> _ExamFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{source}: not valid TOML: {error}") from None
    try:
        return _ExamFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        raise RegistryError(f"{source}: {problems}") from None


def build_registry(documents: Iterable[tuple[str, str]]) -> SyllabusRegistry:
    """Build and check a registry from TOML documents.

    Args:
        documents: ``(source, toml_text)`` pairs in reading order; ``source`` (a path)
            appears in error messages. Later documents for the same exam replace subjects
            with the same key and add the others.

    Returns:
        The registry.

    Raises:
        RegistryError: A document that is not valid TOML or not of the registry's shape, a
            topic name used twice in a subject, an unknown prerequisite, or a cycle.
    """
    order: list[str] = []
    names: dict[str, str] = {}
    aliases: dict[str, tuple[str, ...]] = {}
    subjects: dict[str, dict[str, tuple[str, _SubjectEntry]]] = {}
    for source, text in documents:
        entry = _parse_document(source, text)
        key = normalise_topic_name(entry.exam).replace(" ", "-")
        if not key:
            raise RegistryError(f"{source}: exam key {entry.exam!r} has no letters or digits")
        if key not in subjects:
            order.append(key)
            subjects[key] = {}
            names[key] = key.upper()
            aliases[key] = ()
        if entry.name:
            names[key] = entry.name
        if entry.aliases:
            aliases[key] = entry.aliases
        for subject_key, subject in entry.subjects.items():
            subjects[key][subject_key.lower()] = (source, subject)
    exams = [
        ExamSyllabus(
            key=key,
            name=names[key],
            aliases=aliases[key],
            subjects=tuple(
                _build_subject(key, subject_key, source, subject)
                for subject_key, (source, subject) in subjects[key].items()
            ),
        )
        for key in order
    ]
    return SyllabusRegistry(exams)


def _build_subject(exam: str, key: str, source: str, entry: _SubjectEntry) -> SubjectSyllabus:
    where = f"{source}: {exam}/{key}"
    grouped: list[tuple[str | None, _TopicEntry]] = [(None, topic) for topic in entry.topics]
    for part_key, part in entry.sub_subjects.items():
        grouped.extend((part_key.lower(), topic) for topic in part.topics)
    if not grouped:
        raise RegistryError(f"{where}: the subject has no topics")

    canonical: dict[str, str] = {}
    owner: dict[str, int] = {}
    for position, (_, topic) in enumerate(grouped):
        for name in (topic.name, *topic.aliases):
            normalised = normalise_topic_name(name)
            if not normalised:
                raise RegistryError(f"{where}: topic name {name!r} has no letters or digits")
            if owner.get(normalised, position) != position:
                other = canonical[normalised]
                raise RegistryError(
                    f"{where}: topic {topic.name!r} is listed twice"
                    if normalise_topic_name(other) == normalise_topic_name(topic.name)
                    else f"{where}: the name {name!r} is used by both {other!r} and {topic.name!r}"
                )
            owner[normalised] = position
            canonical[normalised] = topic.name

    requires: dict[str, tuple[str, ...]] = {}
    for _, topic in grouped:
        resolved: list[str] = []
        for name in topic.prerequisites:
            target = canonical.get(normalise_topic_name(name))
            if target is None:
                raise RegistryError(
                    f"{where}: topic {topic.name!r} names unknown prerequisite {name!r}"
                    + _suggestion(name, [t.name for _, t in grouped])
                )
            if target not in resolved:
                resolved.append(target)
        requires[topic.name] = tuple(resolved)
    _check_acyclic(where, [topic.name for _, topic in grouped], requires)

    def build(part: str | None, topic: _TopicEntry) -> RegistryTopic:
        return RegistryTopic(
            name=topic.name,
            weight=topic.weight,
            hours=topic.hours,
            difficulty=topic.difficulty,
            prerequisites=requires[topic.name],
            subtopics=topic.subtopics,
            aliases=topic.aliases,
            exam=exam,
            subject=key,
            sub_subject=part,
        )

    return SubjectSyllabus(
        key=key,
        name=entry.name,
        aliases=entry.aliases,
        own_topics=tuple(build(None, topic) for topic in entry.topics),
        sub_subjects=tuple(
            SubSubjectSyllabus(
                key=part_key.lower(),
                name=part.name,
                aliases=part.aliases,
                topics=tuple(build(part_key.lower(), topic) for topic in part.topics),
            )
            for part_key, part in entry.sub_subjects.items()
        ),
        source=source,
    )


def _suggestion(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_acyclic(where: str, names: Sequence[str], requires: dict[str, tuple[str, ...]]) -> None:
    """Depth-first search; the first back edge found is reported as the cycle."""
    done: set[str] = set()
    for root in names:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack: list[Iterator[str]] = [iter(requires[root])]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if following in on_path:
                cycle = [*path[path.index(following) :], following]
                raise RegistryError(
                    f"{where}: prerequisite cycle {' -> '.join(cycle)} "
                    "(each topic requires the next)"
                )
            if following not in done:
                path.append(following)
                on_path.add(following)
                stack.append(iter(requires[following]))


def load_registry(
    extra_dirs: Sequence[Path | str] = (), *, include_builtin: bool = True
) -> SyllabusRegistry:
    """Read the registry files.

    Args:
        extra_dirs: More directories of ``*.toml`` files (from the planner's settings), read
            after the built-in ones, in the order given.
        include_builtin: Whether to read the files that ship with the planner first.

    Returns:
        The checked registry.

    Raises:
        RegistryError: A directory that does not exist, a file that is not UTF-8, or any
            problem :func:`build_registry` finds.
    """
    directories = [BUILTIN_SYLLABI_DIR] if include_builtin else []
    directories.extend(Path(directory) for directory in extra_dirs)
    documents: list[tuple[str, str]] = []
    for directory in directories:
        if not directory.is_dir():
            raise RegistryError(f"syllabus directory {directory} does not exist")
        for path in sorted(directory.glob("*.toml")):
            try:
                documents.append((str(path), path.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                raise RegistryError(f"{path}: not UTF-8 text") from None
    return build_registry(documents)
