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
    if len(set(keys)) / len(keys) < policy.min_distinct:
        return False
    content = Counter(k for k in keys if k not in STOPWORDS)
    return not content or max(content.values()) <= policy.max_word_repeats


def _is_term(word: str, policy: ExtractPolicy) -> bool:
    key = normalised(word)
    return (
        len(key) >= policy.min_term_chars
        and " " not in key
        and key.isalpha()
        and key not in STOPWORDS
        and not key.endswith(("ly", "ing", "ed"))
    )


def _nounish(items: Sequence[_Sentence], policy: ExtractPolicy) -> Counter[str]:
    """The text's terms that read as things (nouns), with how many sentences use them.

    A term is taken for a noun when it opens a sentence, ends like one (``-tion``, ``-ase``,
    ``-plast`` ...), or follows a determiner or a preposition (``the``, ``of``, ``into``
    ...; of two terms in a row there, the second: "the genetic material"). A term the same
    text uses as a verb (:func:`_verbal`: "to release", "Mitochondria release energy") is
    never taken, whatever else it does; nor is one that ends like an adjective and only ever
    describes the term after it (:func:`_modifiers`: "different chromosomes", "highest
    efficiency"; "cell" in "cell membrane" stays a noun). Keys and distractors are drawn
    from these only, so the options of an item are alike: no verb among nouns.
    """
    found: Counter[str] = Counter()
    verbs: set[str] = set()
    heads: set[str] = set()
    for item in items:
        names: set[str] = set()
        is_term = [_is_term(word, policy) for word in item.words]
        before = _modifiers(item, is_term)
        for position, key in enumerate(item.keys):
            if not is_term[position]:
                continue
            if not before[position]:
                heads.add(key)
            if _verbal(item, position, is_term):
                verbs.add(key)
            elif position == 0 or key.endswith(_NOUN_ENDINGS):
                names.add(key)
            elif item.keys[position - 1] in _NOUN_BEFORE:
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
    return found


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


def _siblings(
    key: str,
    sentence: _Sentence,
    terms: Counter[str],
    forms: dict[str, str],
    topic_words: set[str],
    *,
    openers: frozenset[str] = frozenset(),
) -> list[str]:
    """Three distractors for ``key``: other terms of the same text, not in the sentence,
    not a form of the key, like the key in number (plural) and length; most used first."""
    in_sentence = set(sentence.keys)
    plural = key.endswith("s")
    pool = [
        t
        for t in terms
        if t != key
        and t not in topic_words
        and t not in in_sentence
        and not _related(t, key)
        and not any(_related(t, s) for s in in_sentence if len(s) >= 4)
    ]
    # A term that opens sentences (a subject: "Rome is ...") is a sibling of another such
    # term before one that does not ("... of France").
    pool.sort(
        key=lambda t: (
            (t in openers) != (key in openers),
            t.endswith("s") != plural,
            -terms[t],
            abs(len(t) - len(key)),
            t,
        )
    )
    chosen: list[str] = []
    for t in pool:
        if all(not _related(t, c) for c in chosen):
            chosen.append(t)
        if len(chosen) == MULTIPLE_CHOICE_OPTIONS - 1:
            break
    return [forms[t] for t in chosen]


def _cloze(
    sentence: _Sentence,
    terms: Counter[str],
    forms: dict[str, str],
    topic_words: set[str],
    openers: frozenset[str],
) -> tuple[str, str, list[str]] | None:
    """``(text, key, options)`` of a cloze over the sentence's most used noun."""
    counts = Counter(sentence.keys)
    candidates = [
        k
        for k in dict.fromkeys(sentence.keys)
        if k in terms and counts[k] == 1 and k not in topic_words
    ]
    candidates.sort(key=lambda k: (-terms[k], -len(k), k))
    for key in candidates:
        distractors = _siblings(key, sentence, terms, forms, topic_words, openers=openers)
        if len(distractors) < MULTIPLE_CHOICE_OPTIONS - 1:
            continue
        written = sentence.words[sentence.keys.index(key)]
        blanked = _replace_word(sentence.text, written, "___")
        if blanked is None:
            continue
        return CLOZE_PREFIX + blanked, forms[key], [forms[key], *distractors]
    return None


def _replace_word(text: str, word: str, by: str) -> str | None:
    """``text`` with its one whole-word occurrence of ``word`` replaced, or None."""
    pattern = re.compile(rf"(?<![A-Za-z'\-]){re.escape(word)}(?![A-Za-z'\-])")
    if len(pattern.findall(text)) != 1:
        return None
    return pattern.sub(by, text, count=1)


def _definition(
    sentence: _Sentence,
    terms: Counter[str],
    forms: dict[str, str],
    topic_words: set[str],
    openers: frozenset[str],
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
    distractors = _siblings(term_keys[-1], sentence, terms, forms, topic_words, openers=openers)
    if len(distractors) < MULTIPLE_CHOICE_OPTIONS - 1:
        return None
    shown = " ".join(forms.get(k, k) for k in term_keys)
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
    terms: Counter[str],
    forms: dict[str, str],
    *,
    topic: str,
    topic_words: set[str],
    difficulty: QuestionDifficulty,
    false_wanted: bool,
    openers: frozenset[str] = frozenset(),
) -> ExtractedItem | None:
    if kind == "cloze":
        built = _cloze(sentence, terms, forms, topic_words, openers)
    elif kind == "definition":
        built = _definition(sentence, terms, forms, topic_words, openers)
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
        for text in sentences(source.text, policy):
            words = tuple(_WORD.findall(text))
            parsed.append(_Sentence(text, words, tuple(normalised(w) for w in words), source))
    if not parsed:
        return []
    forms = _display_forms(parsed)
    # Distractors are siblings from the same text: the pages of one material share their
    # terms, the context and the lesson each have their own.
    texts = {_text_of(source) for source in sources}
    by_text = {
        text: _nounish([p for p in parsed if _text_of(p.source) == text], policy) for text in texts
    }
    terms = [by_text[_text_of(source)] for source in sources]
    opening = {
        text: frozenset(p.keys[0] for p in parsed if _text_of(p.source) == text and p.keys)
        for text in texts
    }
    openers = [opening[_text_of(source)] for source in sources]
    topic_words = set(normalised(topic).split())
    excluded = {normalised(text) for text in seen}
    kinds: tuple[ExtractKind, ...] = ("definition", "cloze", "true_false")
    items: list[ExtractedItem] = []
    used: set[int] = set()
    turn = 0
    while len(items) < count:
        added = None
        for offset in range(len(kinds)):
            kind = kinds[(turn + offset) % len(kinds)]
            false_wanted = sum(i.kind == "true_false" for i in items) % 2 == 1
            for index, sentence in enumerate(parsed):
                if index in used:
                    continue
                source_index = next(i for i, s in enumerate(sources) if s is sentence.source)
                item = _build(
                    kind,
                    sentence,
                    terms[source_index],
                    forms,
                    topic=topic,
                    topic_words=topic_words,
                    difficulty=difficulty,
                    false_wanted=false_wanted,
                    openers=openers[source_index],
                )
                if item is not None and normalised(item.question.text) not in excluded:
                    used.add(index)
                    added = item
                    break
            if added is not None:
                turn = (turn + offset + 1) % len(kinds)
                break
        if added is None:
            break
        items.append(added)
        excluded.add(normalised(added.question.text))
    return items
