"""Questions built from source text, for when the model's rounds fall short.

The embedded model often writes no usable question at all (repeated options, an answer that
is not an option, cut-off JSON). The student's own text does not fail that way, so the quiz
builds the missing questions from it: the student's material, the request's ``context``, or
the lesson the autopilot just taught. Three kinds:

- **cloze**: a sentence with one key term blanked; the options are the term and three
  sibling terms of the same text;
- **definition**: a sentence of the form "X is Y" read backwards: which term is described as
  "is Y"; the options are X and three sibling terms;
- **true/false**: a sentence as written (True) or negated by its verb (False).

Rules kept:

- **Supported key**: every item keeps the sentence it came from, and :func:`key_supported`
  re-derives the key from that sentence (the blank filled gives the sentence back; the
  defined term is the sentence's subject; a True statement is the sentence, a False one its
  negation). An item that fails this is never returned.
- **Good options**: 4 distinct non-empty options (compared as the quiz compares them), the
  key among them, no distractor written in the sentence; true/false has ``True, False``.
- **Clean sentences only**: text that loops (few distinct words, one word over and over),
  code, links or fragments is never used, so a looping lesson gives no question.
- **Deterministic**: the same sources give the same items in the same order, options
  included (their order is a hash of the sentence, not a random draw).

Pure: no I/O, no clock, no model.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from exammentor.contracts.quiz import (
    MULTIPLE_CHOICE_OPTIONS,
    TRUE_FALSE_OPTIONS,
    ExtractSource,
    Question,
    QuestionDifficulty,
)
from services.quiz.domain.text import normalised
from services.quiz.domain.validation import QuestionDraft, check_question

ExtractKind = Literal["cloze", "definition", "true_false"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+\u2022]\s+|\d+[.)]\s+|>\s*)")
_EMPHASIS = re.compile(r"\*\*|__|`")
_UNUSABLE = re.compile(r"[{}\[\]<>|\\]|https?://|www\.|\.{3}|\u2026|___")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")
_DEFINITION = re.compile(
    r"^(?:(?:the|a|an)\s+)?(?P<term>[A-Za-z][A-Za-z\-]*(?:\s+[A-Za-z][A-Za-z\-]*){0,2})\s+"
    r"(?P<verb>is|are|refers to|means)\s+(?P<rest>.+?)[.!]?$",
    re.IGNORECASE,
)
_AUXILIARIES = ("is", "are", "was", "were", "can", "will", "must", "should", "may")
_DETERMINERS = frozenset(
    {"the", "a", "an", "this", "these", "those", "its", "their", "his", "her", "our", "each"}
)
_ADJECTIVE_ENDINGS = (
    "al", "ic", "ive", "ous", "ent", "ant", "ar", "ary", "est", "ful", "less", "able", "ible",
    "ile", "ite", "ate", "ern", "ish",
)  # fmt: skip
"""Endings of adjectives: such a term that only ever stands before another is not a noun."""
_PREPOSITIONS = frozenset(
    {
        "of", "in", "on", "for", "by", "from", "with", "into", "at", "per", "between",
        "through", "over", "under", "across", "towards", "about", "during", "without",
        "within", "onto", "upon", "like", "than", "against",
    }
)  # fmt: skip
_NOUN_BEFORE = _DETERMINERS | _PREPOSITIONS
"""Words after which a term is a noun (of two terms in a row, the second)."""
_VERB_BEFORE = frozenset(
    {
        "to", "can", "could", "will", "would", "may", "might", "must", "should", "shall",
        "not", "does", "do", "did", "they", "we", "it", "he", "she", "you", "which", "that",
        "who",
    }
)  # fmt: skip
"""Words after which a lower-case term is a verb ("to release", "which controls")."""
_NOUN_ENDINGS = (
    "tion",
    "sion",
    "ment",
    "ism",
    "ity",
    "ness",
    "ance",
    "ence",
    "ure",
    "ogy",
    "ase",
    "ide",
    "ium",
    "ome",
    "cyte",
    "plast",
    "ist",
)
"""Endings of nouns. ``-er`` and ``-or`` are left out: "together", "longer", "never"."""
_MAX_TERM_WORDS = 3
"""Longest term, in words: a longer run is cut to its last three ("Cash Reserve Ratio")."""
CLOZE_PREFIX = "Which term fills the blank? "
DEFINITION_PREFIX = "Which term does the text describe as: "
TRUE_FALSE_PREFIX = "True or false: "

_STOPWORD_TEXT = """a about above after again against all also an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either else even every few for from further had has have having he her here hers him
    his how however i if in into is it its itself just least less like made make makes
    many may might more most much must my near neither no nor not now of off often on once
    one only or other our out over own per rather same several she should since so some
    such than that the their them then there these they this those though through thus to
    too two under until up upon us usually very was we well were what when where whether
    which while who whom whose why will with within without would yet you your called
    known used uses using found include includes including contains contain give gives
    given take takes way ways part parts type types kind kinds form forms thing things
    example lesson micro first second third next last new also each every see never
    always inside outside along among together around across beside besides instead hence
    therefore whereas later sometimes"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Words never used as a key term or a distractor: function words and vague ones."""


@dataclass(frozen=True)
class SourceText:
    """A text questions may be built from, and where it came from.

    Attributes:
        text: The text (plain or markdown).
        kind: ``material`` (the student's stored material), ``context`` (text sent with the
            request) or ``lesson`` (the lesson just taught).
        material_id: The stored material's id, for ``material``.
        page: The page the text is on, when known.
    """

    text: str
    kind: ExtractSource
    material_id: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class ExtractPolicy:
    """Limits on what is extracted; the defaults are what the quiz service uses.

    Attributes:
        min_sentence_words: Shorter sentences say too little to ask about.
        max_sentence_words: Longer ones make unreadable questions.
        min_term_chars: Shortest key term or distractor.
        min_distinct: Share of distinct words below which a sentence loops.
        max_word_repeats: A sentence with a content word more often than this loops.
    """

    min_sentence_words: int = 6
    max_sentence_words: int = 40
    min_term_chars: int = 4
    min_distinct: float = 0.6
    max_word_repeats: int = 2


DEFAULT_EXTRACT_POLICY = ExtractPolicy()


@dataclass(frozen=True)
class ExtractedItem:
    """A question built from a sentence, with what checks it.

    Attributes:
        question: The checked question (``source="extract"``).
        kind: How it was built.
        sentence: The source sentence, as it stands in the text.
        key: The correct option's text.
        source: The text the sentence came from.
    """

    question: Question
    kind: ExtractKind
    sentence: str
    key: str
    source: SourceText


@dataclass(frozen=True)
class _Sentence:
    text: str
    words: tuple[str, ...]
    """Its words as written (for display forms)."""
    keys: tuple[str, ...]
    """Its words normalised."""
    source: SourceText


# --- Reading the text ----------------------------------------------------------------------


def sentences(text: str, policy: ExtractPolicy = DEFAULT_EXTRACT_POLICY) -> list[str]:
    """The clean sentences of a text that questions may be built from, in order.

    Markdown markers (headings, bullets, emphasis) are dropped; a sentence that loops, holds
    code, brackets or links, or is shorter or longer than the policy allows is left out.

    Args:
        text: Any text.
        policy: The limits.

    Returns:
        The usable sentences, each on one line, duplicates (as compared) removed.
    """
    found: list[str] = []
    taken: set[str] = set()
    for raw in text.splitlines():
        line = _EMPHASIS.sub("", _MARKUP.sub("", raw)).strip()
        for part in _SENTENCE_END.split(line):
            sentence = " ".join(part.split())
            key = normalised(sentence)
            if key and key not in taken and _usable(sentence, policy):
                taken.add(key)
                found.append(sentence)
    return found


def _usable(sentence: str, policy: ExtractPolicy) -> bool:
    if _UNUSABLE.search(sentence) or not sentence[0].isupper():
        return False
    if not sentence.endswith((".", "!")):
        return False  # a fragment or a question: nothing it says can be checked
    keys = normalised(sentence).split()
    if not policy.min_sentence_words <= len(keys) <= policy.max_sentence_words:
        return False
    units = _units(sentence)
    if len(set(units)) / len(units) < policy.min_distinct:
        return False
    content = Counter(u for u in units if u not in STOPWORDS and len(u) > 1)
    return not content or max(content.values()) <= policy.max_word_repeats


def _units(sentence: str) -> list[str]:
    """The sentence's words, with each run of adjacent content words (nothing but a space
    between them) taken as one unit: a term named twice ("cost price ... cost price") is two
    uses of one term, not of "price" and "cost" each. A run never holds a word twice: the
    repeat starts a new unit ("ribosomes ribosomes ribosomes" is three units, "cell membrane
    cell membrane" two), and a comma ends one, so a loop counts as it did word by word."""
    units: list[str] = []
    run: list[str] = []
    previous_end = -1
    for match in _WORD.finditer(sentence):
        key = normalised(match.group())
        if not key:
            continue
        gap = sentence[previous_end : match.start()] if previous_end >= 0 else " "
        content = key not in STOPWORDS and len(key) > 1 and key.isalpha()
        if run and (not content or gap.strip() or key in run):
            units.append(" ".join(run))
            run = []
        if content:
            run.append(key)
        else:
            units.extend(key.split())
        previous_end = match.end()
    if run:
        units.append(" ".join(run))
    return units


def _is_term(word: str, policy: ExtractPolicy) -> bool:
    key = normalised(word)
    return (
        len(key) >= policy.min_term_chars
        and " " not in key
        and key.isalpha()
        and key not in STOPWORDS
        and not key.endswith(("ly", "ing", "ed"))
    )


def _nounish(
    items: Sequence[_Sentence], policy: ExtractPolicy
) -> tuple[Counter[str], frozenset[str]]:
    """The text's terms that read as things (nouns), with how many sentences use them.

    A term is taken for a noun when it opens a sentence, ends like one (``-tion``, ``-ase``,
    ``-plast`` ...), or follows a determiner or a preposition (``the``, ``of``, ``into``
    ...; of two terms in a row there, the second: "the genetic material"). A term the same
    text uses as a verb (:func:`_verbal`: "to release", "Mitochondria release energy") is
    never taken, whatever else it does; nor is one that ends like an adjective and only ever
    describes the term after it (:func:`_modifiers`: "different chromosomes", "highest
    efficiency"; "cell" in "cell membrane" stays a noun). Keys and distractors are drawn
    from these only, so the options of an item are alike: no verb among nouns.

    Returns:
        The nouns with their counts, and the terms the text uses as verbs.
    """
    found: Counter[str] = Counter()
    verbs: set[str] = set()
    heads: set[str] = set()
    for item in items:
        names: set[str] = set()
        is_term = [_is_term(word, policy) for word in item.words]
        before = _modifiers(item, is_term)
        numbered = _after_number(item)
        for position, key in enumerate(item.keys):
            if not is_term[position]:
                continue
            if not before[position]:
                heads.add(key)
            if _verbal(item, position, is_term):
                verbs.add(key)
            elif position == 0 or key.endswith(_NOUN_ENDINGS):
                names.add(key)
            elif item.keys[position - 1] in _NOUN_BEFORE and not numbered[position]:
                # "the genetic material": the noun is the last of two terms in a row, unless
                # that one reads as a verb: of a singular noun ("the nucleus holds"), or
                # before a preposition ("a gene separate during ...").
                two = position + 1 < len(item.keys) and is_term[position + 1]
                second = item.keys[position + 1] if two else ""
                after = item.keys[position + 2] if position + 2 < len(item.keys) else ""
                verb = _verb_after(key, second) or after in _NOUN_BEFORE
                names.add(second if two and not verb else key)
        found.update(names)
    for term in list(found):
        if term in verbs or (term not in heads and term.endswith(_ADJECTIVE_ENDINGS)):
            del found[term]
    return found, frozenset(verbs)


@dataclass(frozen=True)
class _Vocabulary:
    """The terms of one text: what keys and distractors are drawn from."""

    nouns: Counter[str]
    """Its one-word nouns (:func:`_nounish`), with how many sentences use them."""
    verbs: frozenset[str]
    """Its terms used as verbs: never part of a term."""
    terms: Counter[tuple[str, ...]]
    """Its terms (:func:`term_spans`), whole, with how many sentences use them."""
    openers: frozenset[tuple[str, ...]]
    """Its terms that open a sentence (its subjects)."""
    shown: dict[tuple[str, ...], str]
    """Each term as the text writes it (inside a sentence; a sentence's first word as it
    is written elsewhere, :func:`_display_forms`)."""


def _vocabulary(
    items: Sequence[_Sentence], forms: dict[str, str], policy: ExtractPolicy
) -> _Vocabulary:
    nouns, verbs = _nounish(items, policy)
    nouns.update(_plural_heads(items, nouns, verbs, policy))
    terms: Counter[tuple[str, ...]] = Counter()
    openers: set[tuple[str, ...]] = set()
    written: dict[tuple[str, ...], Counter[str]] = {}
    for item in items:
        spans = term_spans(item, nouns, verbs, policy)
        found = {item.keys[a:b]: a for a, b in spans}
        terms.update(found)
        openers.update(term for term, start in found.items() if start == 0)
        for a, b in spans:
            words = list(item.words[a:b])
            if a == 0:
                words[0] = forms.get(item.keys[0], words[0].lower())
            written.setdefault(item.keys[a:b], Counter())[" ".join(words)] += 1
    shown = {term: seen.most_common(1)[0][0] for term, seen in written.items()}
    return _Vocabulary(nouns, verbs, terms, frozenset(openers), shown)


def _plural_heads(
    items: Sequence[_Sentence],
    nouns: Collection[str],
    verbs: Collection[str],
    policy: ExtractPolicy,
) -> set[str]:
    """Plurals that end a compound: right after a term, and followed by nothing, a comma or
    a verb ("the light reactions.", "the thylakoid membranes hold"). The noun rule of
    :func:`_nounish` reads "the light reactions" as a noun and its verb; a verb here would
    have an object or a preposition after it ("the nucleus holds the DNA", "energy passes
    from"), and after "a" the first word is the singular noun and the plural its verb ("a
    leak subtracts")."""
    found: set[str] = set()
    for item in items:
        adjacent = _adjacent(item)
        for position in range(1, len(item.keys)):
            key = item.keys[position]
            previous = item.keys[position - 1]
            if (
                _singular(key)
                or key in verbs
                or key in nouns
                or not adjacent[position - 1]
                or previous in verbs
                or not _is_term(item.words[position - 1], policy)
                or not _is_term(item.words[position], policy)
            ):
                continue
            if position >= 2 and item.keys[position - 2] in ("a", "an"):
                continue
            last = position + 1 == len(item.keys)
            following = "" if last else item.keys[position + 1]
            if last or not adjacent[position] or following in verbs:
                found.add(key)
    return found


def text_terms(text: str, policy: ExtractPolicy = DEFAULT_EXTRACT_POLICY) -> list[list[str]]:
    """The terms of each usable sentence of ``text``, as keys and distractors are drawn.

    Args:
        text: Any text.
        policy: The limits.

    Returns:
        Per sentence (:func:`sentences`), its terms (normalised), in order.
    """
    parsed = [_parse(sentence, SourceText(text, "context")) for sentence in sentences(text, policy)]
    vocabulary = _vocabulary(parsed, _display_forms(parsed), policy)
    return [
        [" ".join(item.keys[a:b]) for a, b in term_spans(item, vocabulary.nouns, vocabulary.verbs)]
        for item in parsed
    ]


def _parse(text: str, source: SourceText) -> _Sentence:
    words = tuple(_WORD.findall(text))
    return _Sentence(text, words, tuple(normalised(w) for w in words), source)


def _adjacent(item: _Sentence) -> list[bool]:
    """For each word, whether the next one follows it with nothing but a space between."""
    spans = [m.span() for m in _WORD.finditer(item.text)]
    if len(spans) != len(item.words):
        return [False] * len(item.words)
    return [
        position + 1 < len(spans) and not item.text[end : spans[position + 1][0]].strip()
        for position, (_, end) in enumerate(spans)
    ]


def term_spans(
    item: _Sentence,
    nouns: Collection[str],
    verbs: Collection[str],
    policy: ExtractPolicy = DEFAULT_EXTRACT_POLICY,
) -> list[tuple[int, int]]:
    """Where the sentence's terms are: ``(start, end)`` word positions, end excluded.

    A term is a whole noun phrase as the text writes it ("Calvin cycle", "carbon dioxide",
    "cost price", "Golgi apparatus"), so a key or a distractor is never half of one:

    - a **run** is a stretch of term words (:func:`_is_term`, never one the text uses as a
      verb) with nothing but spaces between them; a plural ends a run ("RuBisCO fixes |
      carbon dioxide"), as a modifier of a compound is singular ("cost price");
    - a short capitalised word joins the capitalised term after it ("El Nino");
    - a word ending in ``-ed`` joins a run as a modifier right after a determiner or a
      preposition ("the marked price", "an isolated system");
    - the term is the run up to its last noun (a name written with a capital inside the
      sentence counts as one: "Lok Sabha"), at most three words;
    - the first word of a run that follows a plural noun directly is that noun's verb
      ("Dendrites receive signals"), so it is left out.

    Args:
        item: A parsed sentence.
        nouns: The text's one-word nouns.
        verbs: The text's terms used as verbs.
        policy: The limits.

    Returns:
        The spans, in order, not overlapping.
    """
    count = len(item.words)
    adjacent = _adjacent(item)

    def word(position: int) -> bool:
        key = item.keys[position]
        if key in verbs:
            return False
        if _is_term(item.words[position], policy):
            return True
        written = item.words[position]
        if (  # "El Nino": a short word of a name, before the name's next word
            written[:1].isupper()
            and key.isalpha()
            and key not in STOPWORDS
            and position + 1 < count
            and adjacent[position]
            and item.words[position + 1][:1].isupper()
            and _is_term(item.words[position + 1], policy)
        ):
            return True
        return (  # "the marked price": a participle describing the noun after it
            key.endswith("ed")
            and key.isalpha()
            and len(key) >= policy.min_term_chars
            and key not in STOPWORDS
            and 0 < position < count - 1
            and item.keys[position - 1] in _NOUN_BEFORE
            and adjacent[position]
            and _is_term(item.words[position + 1], policy)
        )

    def noun(position: int) -> bool:
        written = item.words[position]
        return item.keys[position] in nouns or (position > 0 and written[:1].isupper())

    spans: list[tuple[int, int]] = []
    start = 0
    while start < count:
        if not word(start):
            start += 1
            continue
        end = start
        while (
            end + 1 < count
            and adjacent[end]
            and word(end + 1)
            and (_singular(item.keys[end]) or (end > 0 and item.words[end][:1].isupper()))
        ):
            end += 1
        last = end
        while last >= start and not noun(last):
            last -= 1
        first = start
        follows_plural = (
            start > 0
            and adjacent[start - 1]
            and not _singular(item.keys[start - 1])
            and noun(start - 1)
        )
        if follows_plural and last > first:
            first += 1
        if last >= first and len(set(item.keys[first : last + 1])) == last + 1 - first:
            spans.append((max(first, last - _MAX_TERM_WORDS + 1), last + 1))
        start = end + 1
    return spans


def _after_number(item: _Sentence) -> list[bool]:
    """For each word, whether a number stands between it and the word before ("in 1930
    began": "began" does not follow "in")."""
    spans = [m.span() for m in _WORD.finditer(item.text)]
    if len(spans) != len(item.words):
        return [False] * len(item.words)
    return [
        position > 0 and any(c.isdigit() for c in item.text[spans[position - 1][1] : start])
        for position, (start, _) in enumerate(spans)
    ]


def _modifiers(item: _Sentence, is_term: Sequence[bool]) -> list[bool]:
    """For each word, whether it stands right before another term, nothing between but a
    space ("different chromosomes", "highest efficiency"). A term that stands there each
    time the text uses it only describes the next one, so it is no option beside nouns."""
    spans = [m.span() for m in _WORD.finditer(item.text)]
    found = [False] * len(item.words)
    if len(spans) != len(item.words):
        return found
    for position in range(len(spans) - 1):
        gap = item.text[spans[position][1] : spans[position + 1][0]]
        found[position] = is_term[position + 1] and not gap.strip()
    return found


def _verbal(item: _Sentence, position: int, is_term: Sequence[bool]) -> bool:
    """Whether the term at ``position`` is used as a verb: after ``to``, a modal, a pronoun
    or ``not``; or right after a one-word subject and before its object ("Mitochondria
    release energy"; "Salivary amylase breaks ..." is a noun before its verb)."""
    key = item.keys[position]
    word = item.words[position]
    if position and item.keys[position - 1] in _VERB_BEFORE and word.islower():
        return True
    if position != 1 or key.endswith("s") or not word.islower():
        return False
    following = item.keys[2] if len(item.keys) > 2 else ""
    return bool(following) and is_term[2] and not following.endswith("s")


def _singular(word: str) -> bool:
    return not word.endswith("s") or word.endswith(("ss", "us", "is"))


def _verb_after(noun: str, word: str) -> bool:
    """Whether ``word`` after ``noun`` reads as its verb: ``-s`` after a singular noun."""
    return _singular(noun) and not _singular(word)


def _display_forms(items: Sequence[_Sentence]) -> dict[str, str]:
    """How each word is shown as an option: as written inside sentences (a name keeps its
    capital), else in lower case, so a capital from a sentence's start gives nothing away."""
    inner: dict[str, Counter[str]] = {}
    for item in items:
        for position, word in enumerate(item.words):
            if position:
                inner.setdefault(normalised(word), Counter())[word] += 1
    forms: dict[str, str] = {}
    for item in items:
        for word in item.words:
            key = normalised(word)
            seen = inner.get(key)
            forms[key] = seen.most_common(1)[0][0] if seen else word.lower()
    return forms


def _related(a: str, b: str) -> bool:
    """Whether two terms are forms of one word (``ribosome``, ``ribosomes``)."""
    short, long_ = sorted((a, b), key=len)
    return long_.startswith(short[: max(4, len(short) - 2)])


# --- Building items ------------------------------------------------------------------------


def _same_case(options: Sequence[str]) -> list[str]:
    """The options written alike, so a capital gives no option away: all with a capital
    first letter when one is a name (written capitalised inside a sentence), else as they
    are (lower case unless an acronym)."""
    if any(o[:1].isupper() and not o.isupper() for o in options):
        return [o[:1].upper() + o[1:] for o in options]
    return list(options)


def _order(seed: str, options: Sequence[str]) -> list[str]:
    """``options`` in an order fixed by ``seed`` (so the key's position varies, repeatably)."""
    return sorted(options, key=lambda o: hashlib.sha256(f"{seed}\n{o}".encode()).hexdigest())


def _related_terms(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether two terms name the same thing: forms of one word ("ribosome", "ribosomes"),
    one inside the other ("price", "cost price"), or word for word alike. Two compounds of
    one head are siblings, not the same ("cost price", "selling price")."""
    if len(a) == len(b):
        return all(_related(x, y) for x, y in zip(a, b, strict=True))
    short, long_ = sorted((a, b), key=len)
    return all(any(_related(x, y) for y in long_) for x in short)


def _shown(term: tuple[str, ...], vocabulary: _Vocabulary, forms: dict[str, str]) -> str:
    found = vocabulary.shown.get(term)
    return found if found is not None else " ".join(forms.get(k, k) for k in term)


def _siblings(
    key: tuple[str, ...],
    sentence: _Sentence,
    vocabulary: _Vocabulary,
    forms: dict[str, str],
    topic_words: set[str],
) -> list[str]:
    """Three distractors for ``key``: other whole terms of the same text, none the key or a
    form of it, none with a word the sentence holds besides the key's own (so no option is
    given away by the sentence), like the key in size (a compound for a compound: "carbon
    dioxide" gets "light energy" before "oxygen"), role and number; most used first."""
    terms = vocabulary.terms
    keep = set(key)
    elsewhere = [s for s in sentence.keys if s not in keep and len(s) >= 4]
    compound = len(key) > 1
    plural = not _singular(key[-1])
    opener = key in vocabulary.openers
    pool = [
        t
        for t in terms
        if t != key
        and t[-1] not in topic_words
        and not _related_terms(t, key)
        and not any(w in sentence.keys for w in t if w not in keep)
        and not any(_related(w, s) for w in t if w not in keep for s in elsewhere)
    ]
    # A term that opens sentences (a subject: "Rome is ...") is a sibling of another such
    # term before one that does not ("... of France").
    pool.sort(
        key=lambda t: (
            (t in vocabulary.openers) != opener,
            (len(t) > 1) != compound,
            (not _singular(t[-1])) != plural,
            -terms[t],
            abs(len(" ".join(t)) - len(" ".join(key))),
            t,
        )
    )
    chosen: list[tuple[str, ...]] = []
    for t in pool:
        if all(not _related_terms(t, c) for c in chosen):
            chosen.append(t)
        if len(chosen) == MULTIPLE_CHOICE_OPTIONS - 1:
            break
    return [_shown(t, vocabulary, forms) for t in chosen]


def _cloze(
    sentence: _Sentence,
    vocabulary: _Vocabulary,
    forms: dict[str, str],
    topic_words: set[str],
) -> tuple[str, str, list[str]] | None:
    """``(text, key, options)`` of a cloze over the sentence's most used whole term."""
    spans = term_spans(sentence, vocabulary.nouns, vocabulary.verbs)
    found = Counter(sentence.keys[a:b] for a, b in spans)
    where = {sentence.keys[a:b]: (a, b) for a, b in spans}
    candidates = [
        t for t in found if found[t] == 1 and t[-1] not in topic_words and t in vocabulary.terms
    ]
    candidates.sort(key=lambda t: (-vocabulary.terms[t], -len(" ".join(t)), t))
    for key in candidates:
        distractors = _siblings(key, sentence, vocabulary, forms, topic_words)
        if len(distractors) < MULTIPLE_CHOICE_OPTIONS - 1:
            continue
        a, b = where[key]
        written = _written(sentence, a, b)
        blanked = _replace_word(sentence.text, written, "___") if written else None
        if blanked is None:
            continue
        shown = _shown(key, vocabulary, forms)
        return CLOZE_PREFIX + blanked, shown, [shown, *distractors]
    return None


def _written(sentence: _Sentence, start: int, end: int) -> str | None:
    """The words ``start`` to ``end`` as the sentence writes them, or None."""
    spans = [m.span() for m in _WORD.finditer(sentence.text)]
    if len(spans) != len(sentence.words):
        return None
    return sentence.text[spans[start][0] : spans[end - 1][1]]


def _replace_word(text: str, word: str, by: str) -> str | None:
    """``text`` with its one whole-word occurrence of ``word`` replaced, or None."""
    pattern = re.compile(rf"(?<![A-Za-z'\-]){re.escape(word)}(?![A-Za-z'\-])")
    if len(pattern.findall(text)) != 1:
        return None
    return pattern.sub(by, text, count=1)


def _definition(
    sentence: _Sentence,
    vocabulary: _Vocabulary,
    forms: dict[str, str],
    topic_words: set[str],
) -> tuple[str, str, list[str]] | None:
    """``(text, key, options)`` asking which term the sentence defines."""
    match = _DEFINITION.match(sentence.text)
    if match is None:
        return None
    term_keys = normalised(match.group("term")).split()
    rest_keys = set(normalised(match.group("rest")).split())
    if (
        not term_keys
        or any(k in STOPWORDS or len(k) < 3 for k in term_keys)
        or rest_keys & set(term_keys)
        or len(rest_keys) < 3
        or set(term_keys) <= topic_words
    ):
        return None
    distractors = _siblings(tuple(term_keys), sentence, vocabulary, forms, topic_words)
    if len(distractors) < MULTIPLE_CHOICE_OPTIONS - 1:
        return None
    shown = _shown(tuple(term_keys), vocabulary, forms)
    described = f"{match.group('verb').lower()} {match.group('rest').strip()}"
    return DEFINITION_PREFIX + described, shown, [shown, *distractors]


def negation(sentence: str) -> str | None:
    """The sentence negated at its first auxiliary verb, or None when it has none.

    ``"X is Y."`` gives ``"X is not Y."``; ``"X is not Y."`` gives ``"X is Y."``.

    Args:
        sentence: A clean sentence.

    Returns:
        The negated sentence, or None.
    """
    words = sentence.split(" ")
    for i, word in enumerate(words[1:-1], start=1):
        if word.lower() in _AUXILIARIES:
            if words[i + 1].lower() == "not":
                return " ".join([*words[: i + 1], *words[i + 2 :]])
            return " ".join([*words[: i + 1], "not", *words[i + 1 :]])
    return None


def _true_false(sentence: _Sentence, false_wanted: bool) -> tuple[str, str, list[str]] | None:
    """``(text, key, options)``: the sentence negated when a False item is wanted and it
    can be, else as written."""
    negated = negation(sentence.text)
    if false_wanted:
        if negated is None:
            return None
        return TRUE_FALSE_PREFIX + negated, TRUE_FALSE_OPTIONS[1], list(TRUE_FALSE_OPTIONS)
    return TRUE_FALSE_PREFIX + sentence.text, TRUE_FALSE_OPTIONS[0], list(TRUE_FALSE_OPTIONS)


def _where(source: SourceText) -> str:
    place = {
        "material": "your material",
        "context": "the text you sent",
        "lesson": "the lesson",
    }[source.kind]
    return f"{place}, page {source.page}" if source.page is not None else place


def _build(
    kind: ExtractKind,
    sentence: _Sentence,
    vocabulary: _Vocabulary,
    forms: dict[str, str],
    *,
    topic: str,
    topic_words: set[str],
    difficulty: QuestionDifficulty,
    false_wanted: bool,
) -> ExtractedItem | None:
    if kind == "cloze":
        built = _cloze(sentence, vocabulary, forms, topic_words)
    elif kind == "definition":
        built = _definition(sentence, vocabulary, forms, topic_words)
    else:
        built = _true_false(sentence, false_wanted)
    if built is None:
        return None
    text, key, options = built
    if kind != "true_false":
        options = _order(sentence.text, _same_case(options))
        key = next(o for o in options if normalised(o) == normalised(key))
    draft = QuestionDraft(
        text=text,
        question_type="true_false" if kind == "true_false" else "multiple_choice",
        options=options,
        answer=key,
        explanation=f"From {_where(sentence.source)}: {sentence.text}",
        concept=topic,
        difficulty=difficulty,
    )
    question, _, reasons = check_question(draft, topic=topic, difficulty=difficulty)
    if question is None or reasons:
        return None
    source = sentence.source
    question = question.model_copy(
        update={
            "source": "extract",
            "extracted_from": source.kind,
            "material_id": source.material_id,
            "page": source.page,
        }
    )
    item = ExtractedItem(
        question=question, kind=kind, sentence=sentence.text, key=key, source=source
    )
    return item if key_supported(item) else None


def _text_of(source: SourceText) -> tuple[str, str | None]:
    """Which text a source is part of: one material (all its pages), the context, the lesson."""
    return source.kind, source.material_id


def key_supported(item: ExtractedItem) -> bool:
    """Whether the item's key follows from its source sentence.

    - cloze: the key is a word of the sentence, and the blank filled with it gives the
      sentence back;
    - definition: the key is the sentence's subject, and the described part is the rest of
      the sentence;
    - true/false: a True statement is the sentence, a False one is its negation.

    In every kind the key must also be the question's correct option.

    Args:
        item: An extracted item.

    Returns:
        True when the key is supported.
    """
    question = item.question
    if question.correct_option_index is None:
        return False
    key = question.options[question.correct_option_index]
    if normalised(key) != normalised(item.key) or not normalised(key):
        return False
    sentence = normalised(item.sentence)
    if item.kind == "true_false":
        statement = question.text.removeprefix(TRUE_FALSE_PREFIX)
        if key == TRUE_FALSE_OPTIONS[0]:
            return normalised(statement) == sentence
        negated = negation(item.sentence)
        return (
            key == TRUE_FALSE_OPTIONS[1]
            and negated is not None
            and normalised(statement) == normalised(negated)
            and normalised(negated) != sentence
        )
    if f" {normalised(key)} " not in f" {sentence} ":
        return False
    if item.kind == "cloze":
        blanked = question.text.removeprefix(CLOZE_PREFIX)
        return blanked.count("___") == 1 and normalised(blanked.replace("___", key)) == sentence
    match = _DEFINITION.match(item.sentence)
    if match is None or normalised(match.group("term")) != normalised(key):
        return False
    described = question.text.removeprefix(DEFINITION_PREFIX)
    return normalised(described) == normalised(f"{match.group('verb')} {match.group('rest')}")


def extract_questions(
    sources: Sequence[SourceText],
    *,
    topic: str,
    count: int,
    difficulty: QuestionDifficulty,
    seen: Collection[str] = (),
    policy: ExtractPolicy = DEFAULT_EXTRACT_POLICY,
) -> list[ExtractedItem]:
    """Up to ``count`` questions built from the sources' sentences.

    Kinds take turns (definition, cloze, true/false, ...), true/false items alternate True
    and False where a sentence can be negated, each sentence gives at most one question,
    sentences are taken in the sources' order, and a question whose text the student saw
    recently is not built again.

    Args:
        sources: The texts, most relevant first.
        topic: The quiz topic (the items' concept; its words are never the key).
        count: Most items wanted.
        difficulty: The difficulty the items are labelled with.
        seen: Question texts not to ask again.
        policy: The limits.

    Returns:
        The items, each checked (:func:`key_supported` and the quiz's question check).
    """
    if count <= 0:
        return []
    parsed: list[_Sentence] = []
    for source in sources:
        parsed.extend(_parse(text, source) for text in sentences(source.text, policy))
    if not parsed:
        return []
    forms = _display_forms(parsed)
    # Distractors are siblings from the same text: the pages of one material share their
    # terms, the context and the lesson each have their own.
    texts = {_text_of(source) for source in sources}
    by_text = {
        text: _vocabulary([p for p in parsed if _text_of(p.source) == text], forms, policy)
        for text in texts
    }
    vocabularies = [by_text[_text_of(source)] for source in sources]
    topic_words = set(normalised(topic).split())
    excluded = {normalised(text) for text in seen}
    kinds: tuple[ExtractKind, ...] = ("definition", "cloze", "true_false")
    items: list[ExtractedItem] = []
    used: set[int] = set()
    turn = 0
    while len(items) < count:
        added = None
        false_wanted = sum(i.kind == "true_false" for i in items) % 2 == 1
        # Kinds in turn; when none gives an item, a true/false of the other truth value
        # (a text whose sentences cannot be negated still gives True statements).
        attempts = [(kinds[(turn + offset) % len(kinds)], false_wanted) for offset in range(3)]
        attempts.append(("true_false", not false_wanted))
        for offset, (kind, false_wanted) in enumerate(attempts):
            for index, sentence in enumerate(parsed):
                if index in used:
                    continue
                source_index = next(i for i, s in enumerate(sources) if s is sentence.source)
                item = _build(
                    kind,
                    sentence,
                    vocabularies[source_index],
                    forms,
                    topic=topic,
                    topic_words=topic_words,
                    difficulty=difficulty,
                    false_wanted=false_wanted,
                )
                if item is not None and normalised(item.question.text) not in excluded:
                    used.add(index)
                    added = item
                    break
            if added is not None:
                turn = (turn + min(offset, len(kinds) - 1) + 1) % len(kinds)
                break
        if added is None:
            break
        items.append(added)
        excluded.add(normalised(added.question.text))
    return items
