"""The measures of ``bench/quality.py``: pure functions over the text the product returned.

Each measure is defined so that a number can be checked by hand (``docs/quality.md``):

- **Words** are lower-cased runs of letters and digits; a **content word** is a word of at
  least three characters (or any number) that is not a stop word, with a plural ``s`` cut
  off, so "ribosomes" and "ribosome" are the same word.
- **Sentences** are split at ``.``, ``!``, ``?``, ``;`` and line breaks (markdown list items
  and headings are sentences of their own); a sentence is compared by its words.
- **Repeated-sentence rate** of a text: sentences that repeat an earlier sentence of the
  same text, over all its sentences (0 for a text that says each thing once).
- **Distinct-4-gram ratio** of a text: distinct word 4-grams over all its word 4-grams
  (1 for no repetition; a list that repeats one word, "ribosomes, ribosomes, ribosomes ...",
  drives it towards 0). Texts of fewer than four words have none.
- **Near copies**: two fields whose word sets have a Jaccard index of at least
  :data:`NEAR_COPY_JACCARD`, or one of which contains the other's words in order (at least
  :data:`MIN_CONTAINED_WORDS` words). Empty fields are not compared.
- **Option checks** of a quiz item, and whether its key is **supported** by the source
  text: one sentence of the source holds at least :data:`SUPPORT_SHARE` of the key's
  content words and more than half of the question's content words found in the source
  (for a true/false item, the statement's content words alone; a key with no content word
  is unsupported). See :func:`supported`.
- **Citation precision and recall** against the pages the answer is known to sit on,
  counted over (material, page) pairs.

Only the standard library: the unit tests import this module without a stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NEAR_COPY_JACCARD = 0.8
MIN_CONTAINED_WORDS = 4
"""A field counts as containing another only when the other has this many words: a step
titled "Osmosis" inside every field is not a copy."""
SUPPORT_SHARE = 0.5
NGRAM = 4

_STOP_WORDS_TEXT = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just
me more most my no nor not now of off on once only or other our out over own same she should
so some such than that the their them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your
yours one two called known used whose upon via per
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")
_FULL_STOP = re.compile(r"(?<=[.!?])\s+|\n+")
"""Where a source text's sentences end, for support: a semicolon does not end one."""
_MARKUP = re.compile(r"^\s*(?:[#>*\-+]+|\d+[.)])\s*")
_CITATION_MARK = re.compile(r"\[(?:S\d+\s*)?p+\.?\s*[\d,\s\-]+\]", re.IGNORECASE)


def words(text: str) -> list[str]:
    """The text's words: lower-cased runs of letters and digits.

    Args:
        text: Any text.

    Returns:
        The words in order.
    """
    return _WORD.findall(text.lower())


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The content words of a text, stemmed (see the module docstring).

    Args:
        text: Any text.

    Returns:
        The content words in order.
    """
    return [_stem(w) for w in words(text) if w.isdigit() or (len(w) >= 3 and w not in STOP_WORDS)]


def sentences(text: str) -> list[str]:
    """The text's sentences, markup and citation labels removed, empty ones dropped.

    Args:
        text: Plain text or markdown.

    Returns:
        Each sentence as its words joined by single spaces.
    """
    found = []
    for part in _SENTENCE_BREAK.split(_CITATION_MARK.sub(" ", text)):
        kept = " ".join(words(_MARKUP.sub("", part)))
        if kept:
            found.append(kept)
    return found


def repeated_sentences(text: str) -> tuple[int, int]:
    """Sentences that repeat an earlier one of the same text, and all sentences.

    Args:
        text: The answer.

    Returns:
        ``(repeats, sentences)``.
    """
    seen: set[str] = set()
    repeats = 0
    found = sentences(text)
    for sentence in found:
        if sentence in seen:
            repeats += 1
        seen.add(sentence)
    return repeats, len(found)


def repeated_sentence_rate(text: str) -> float:
    """Repeated sentences over all sentences (0 for a text without sentences).

    Args:
        text: The answer.

    Returns:
        The rate, 0 to 1.
    """
    repeats, total = repeated_sentences(text)
    return repeats / total if total else 0.0


def ngram_counts(text: str, n: int = NGRAM) -> tuple[int, int]:
    """Distinct and total word n-grams of a text (citation labels removed).

    Args:
        text: The answer.
        n: The n-gram length.

    Returns:
        ``(distinct, total)``; ``(0, 0)`` for fewer than ``n`` words.
    """
    tokens = words(_CITATION_MARK.sub(" ", text))
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)), len(grams)


def distinct_ngram_ratio(text: str, n: int = NGRAM) -> float | None:
    """Distinct word n-grams over all word n-grams.

    Args:
        text: The answer.
        n: The n-gram length.

    Returns:
        The ratio, 0 to 1; None for a text of fewer than ``n`` words.
    """
    distinct, total = ngram_counts(text, n)
    return distinct / total if total else None


def near_copy(first: str, second: str) -> bool:
    """Whether two fields are near copies of each other (see the module docstring).

    Args:
        first: One field's text.
        second: Another field's text.

    Returns:
        True for near copies; False when either is empty.
    """
    a, b = words(_CITATION_MARK.sub(" ", first)), words(_CITATION_MARK.sub(" ", second))
    if not a or not b:
        return False
    set_a, set_b = set(a), set(b)
    if len(set_a & set_b) / len(set_a | set_b) >= NEAR_COPY_JACCARD:
        return True
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if len(shorter) < MIN_CONTAINED_WORDS:
        return False
    return f" {' '.join(shorter)} " in f" {' '.join(longer)} "


def explanation_fields(explanation: Mapping[str, Any]) -> dict[str, str]:
    """The fields of one explanation that must not copy each other.

    Args:
        explanation: The body of ``POST /api/tutor/explain``.

    Returns:
        Field name (``steps[0].content`` for a step) to its text; absent ones left out.
    """
    fields: dict[str, str] = {}
    for name in ("intuition", "real_world_example", "common_pitfall", "practice_question"):
        value = explanation.get(name)
        if isinstance(value, str) and value.strip():
            fields[name] = value
    for i, step in enumerate(explanation.get("steps") or []):
        content = step.get("content") if isinstance(step, Mapping) else None
        if isinstance(content, str) and content.strip():
            fields[f"steps[{i}].content"] = content
    return fields


def near_copy_pairs(fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """The pairs of fields that are near copies.

    Args:
        fields: Field name to text (:func:`explanation_fields`).

    Returns:
        The pairs, each in the fields' order.
    """
    names = list(fields)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if near_copy(fields[a], fields[b])
    ]


def explanation_text(explanation: Mapping[str, Any]) -> str:
    """One explanation as one text, a field per line (for the repetition measures).

    Args:
        explanation: The body of ``POST /api/tutor/explain``.

    Returns:
        Its fields, step titles included, one per line.
    """
    parts = [str(explanation.get("intuition") or "")]
    for step in explanation.get("steps") or []:
        if isinstance(step, Mapping):
            parts += [str(step.get("title") or ""), str(step.get("content") or "")]
            parts.append(str(step.get("analogy") or ""))
    for name in ("real_world_example", "common_pitfall", "practice_question"):
        parts.append(str(explanation.get(name) or ""))
    return "\n".join(p for p in parts if p.strip())


# --- Quiz items ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemCheck:
    """What is wrong with one delivered quiz item (an empty list of problems: valid).

    Attributes:
        empty_option: An option is blank.
        duplicate_options: Two options are the same once normalised.
        key_outside: The revealed key is not one of the options.
        unsupported: The key's content words are not in the source text.
    """

    empty_option: bool = False
    duplicate_options: bool = False
    key_outside: bool = False
    unsupported: bool = False

    @property
    def valid(self) -> bool:
        """A student can answer it and be graded right: options and key are sound."""
        return not (self.empty_option or self.duplicate_options or self.key_outside)

    @property
    def problems(self) -> list[str]:
        """The names of the problems found."""
        return [name for name, bad in vars(self).items() if bad]


def normalised_option(text: str) -> str:
    """An option as compared: its words joined by single spaces.

    Args:
        text: The option.

    Returns:
        The normalised option.
    """
    return " ".join(words(text))


def supported(claim: str, source: str, question: str = "") -> bool:
    """Whether a key (or statement) is backed by the source text, for this question.

    The key and what the question asks about must meet in one sentence of the source: a
    sentence that holds at least :data:`SUPPORT_SHARE` of the key's content words and more
    than half of the question's content words that occur anywhere in the source (its
    subject; template words such as "primary function" occur nowhere and do not count).
    So "protein synthesis" is no answer to "What is the primary function of mitochondria?"
    over a text where proteins are made by ribosomes, although both words are in it.

    Args:
        claim: The key, or the statement of a true/false item.
        source: The text the item is about (the request's context, the material).
        question: The question ('' for a statement judged alone).

    Returns:
        True when one sentence backs the claim; False when the claim has no content word.
    """
    claimed = set(content_words(claim))
    if not claimed:
        return False
    said = [set(content_words(s)) for s in _FULL_STOP.split(source)]
    present = set().union(*said)
    subject = (set(content_words(question)) & present) - claimed
    for sentence in said:
        if len(claimed & sentence) / len(claimed) < SUPPORT_SHARE:
            continue
        if not subject or len(subject & sentence) > len(subject) / 2:
            return True
    return False


def check_item(
    *,
    question_type: str,
    text: str,
    options: Sequence[str],
    correct_option_index: int | None,
    correct_answer: str,
    source: str,
) -> ItemCheck:
    """The checks of one item, with its key as grading revealed it.

    Args:
        question_type: ``multiple_choice``, ``true_false`` or ``fill_in_the_blank``.
        text: The question.
        options: Its options as delivered (none for fill in the blank).
        correct_option_index: The revealed index (None for fill in the blank).
        correct_answer: The revealed key's text.
        source: The source text the item is about.

    Returns:
        The check.
    """
    normalised = [normalised_option(o) for o in options]
    empty = any(not n for n in normalised)
    duplicate = len({n for n in normalised if n}) < len([n for n in normalised if n])
    if question_type == "fill_in_the_blank":
        outside = not normalised_option(correct_answer)
    else:
        outside = (
            correct_option_index is None
            or not 0 <= correct_option_index < len(options)
            or normalised_option(options[correct_option_index])
            != normalised_option(correct_answer or options[correct_option_index])
        )
    claim, asked = (text, "") if question_type == "true_false" else (correct_answer, text)
    return ItemCheck(
        empty_option=empty,
        duplicate_options=duplicate,
        key_outside=outside,
        unsupported=not supported(claim, source, asked),
    )


def best_supported_option(options: Sequence[str], source: str, question: str = "") -> int:
    """The option a student who reads only the source would choose.

    Each option is read with the question: its score is the largest share of the content
    words of question and option together that one sentence of the source holds, so the
    option that completes a sentence of the source wins.

    Args:
        options: The options.
        source: The source text.
        question: The question's text ('' to judge the options alone).

    Returns:
        The index of the best option (the first on a tie; 0 when there are no options).
    """
    asked = set(content_words(question))
    said = [set(content_words(s)) for s in _FULL_STOP.split(source)]
    best, score = 0, -1.0
    for i, option in enumerate(options):
        claimed = set(content_words(option))
        if not claimed:
            continue
        together = claimed | asked
        share = max(len(together & s) / len(together) for s in said)
        if share > score:
            best, score = i, share
    return best


# --- Citations ----------------------------------------------------------------------------


@dataclass
class CitationTally:
    """Cited and known pages counted over many answers (micro-averaged).

    Attributes:
        cited: Pages cited, over all answers.
        known: Pages known to hold the answers.
        correct: Cited pages that are known ones.
        answers: Answers counted.
        uncited: Answers that cited nothing.
    """

    cited: int = 0
    known: int = 0
    correct: int = 0
    answers: int = 0
    uncited: int = 0
    per_answer: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, cited: Iterable[tuple[str | None, int]], known: Iterable[tuple[str, int]]
    ) -> None:
        """Counts one answer.

        Args:
            cited: ``(material_id, page)`` pairs the answer cites; a None material matches
                any material (a citation of attached text).
            known: ``(material_id, page)`` pairs that hold its answer.
        """
        cited_set = set(cited)
        known_set = set(known)
        known_pages = {page for _, page in known_set}
        hits = {c for c in cited_set if c in known_set or (c[0] is None and c[1] in known_pages)}
        self.cited += len(cited_set)
        self.known += len(known_set)
        self.correct += len(hits)
        self.answers += 1
        self.uncited += not cited_set
        self.per_answer.append(
            {"cited": sorted(p for _, p in cited_set), "known": sorted(p for _, p in known_set)}
        )

    @property
    def precision(self) -> float | None:
        """Correct over cited; None when nothing was cited."""
        return self.correct / self.cited if self.cited else None

    @property
    def recall(self) -> float | None:
        """Known pages cited over known pages; None when nothing was asked."""
        return self.correct / self.known if self.known else None


def citation_precision_recall(
    cited: Iterable[tuple[str | None, int]], known: Iterable[tuple[str, int]]
) -> tuple[float | None, float | None]:
    """Precision and recall of one answer's citations.

    Args:
        cited: ``(material_id, page)`` pairs the answer cites.
        known: ``(material_id, page)`` pairs that hold its answer.

    Returns:
        ``(precision, recall)``; precision is None when nothing is cited.
    """
    tally = CitationTally()
    tally.add(cited, known)
    return tally.precision, tally.recall


# --- Aggregates ---------------------------------------------------------------------------


@dataclass
class TextTally:
    """Repetition measures over many texts.

    Attributes:
        texts: Texts counted.
        sentences: Their sentences.
        repeats: Sentences repeating an earlier one of the same text.
        ratios: Each text's distinct-4-gram ratio (texts of four words or more).
    """

    texts: int = 0
    sentences: int = 0
    repeats: int = 0
    ratios: list[float] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Counts one text.

        Args:
            text: The answer or lesson.
        """
        repeats, total = repeated_sentences(text)
        self.texts += 1
        self.sentences += total
        self.repeats += repeats
        ratio = distinct_ngram_ratio(text)
        if ratio is not None:
            self.ratios.append(ratio)

    @property
    def repeated_rate(self) -> float | None:
        """Repeated sentences over all sentences; None without sentences."""
        return self.repeats / self.sentences if self.sentences else None

    @property
    def distinct_ratio(self) -> float | None:
        """Mean distinct-4-gram ratio of the texts; None without any."""
        return sum(self.ratios) / len(self.ratios) if self.ratios else None


def median(values: Sequence[float]) -> float | None:
    """The median (p50), or None for no values.

    Args:
        values: The values.

    Returns:
        The median.
    """
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
