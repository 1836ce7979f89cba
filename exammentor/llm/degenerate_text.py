"""Catching a weak model's degenerate text as it is written: loops, word lists, repeated
sentences, near-copied fields and echoes of the prompt.

The embedded model (SmolLM2-135M) at temperature 0 writes "They include mitochondria,
ribosomes, ribosomes, ribosomes, ..." until its token cap, repeats a paragraph word for word,
copies the prompt's material block back, or puts one sentence in every field of a JSON
answer (``tests/unit/test_degenerate_text.py`` keeps real outputs of it). Rules this module
keeps:

- **Incremental.** :class:`LoopWatch` is fed the stream delta by delta and judges each word
  once, when it is complete, so a caller can stop the model at the first sign of a loop
  instead of paying for the rest of its token cap.
- **Where the loop starts.** A :class:`Degeneration` says at which character the repeated
  part begins: the text before it was judged clean, so it may be kept or shown
  (:func:`clean_prefix` cuts it back to a sentence end).
- **Words, not characters.** Text is compared as case-folded words (punctuation ignored), so
  "Ribosomes," and "ribosomes" are one word.
- **Pure.** No I/O, no clock: the same text gives the same verdict.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

DegenerationKind = Literal[
    "repeated_phrase", "word_list", "repeated_sentence", "few_distinct", "prompt_echo"
]

_WORD = re.compile(r"[^\W_]+")
# A sentence ends at . ! ? followed by a space, or at a line break (markdown lists, headings).
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclass(frozen=True)
class LoopPolicy:
    """The detector's thresholds (tested on real looping output of the embedded model).

    Attributes:
        phrase_words: A run of this many words that occurred earlier in the text is a
            repeated phrase (natural prose almost never repeats 8 words in a row).
        list_unit_words: Longest unit of a word list checked for back-to-back repeats.
        short_unit_repeats: A unit of one or two words repeated back to back this many times
            is a looping list ("ribosomes, ribosomes, ribosomes"); "very very" is not.
        long_unit_repeats: The same for units of three words or more.
        sentence_min_words: Shorter sentences (headings, "Recap:") are never repeats.
        sentence_containment: A sentence whose distinct words are this share of an earlier
            sentence's words or more is a repeat of it (reworded loops change a word or two).
        window_words: Words of the sliding window of the distinct-word check.
        min_distinct: Share of distinct words in the window below which the text loops.
        echo_words: A run of this many words copied from the prompt is an echo (the model
            copying the material or the instructions back at length).
    """

    phrase_words: int = 8
    list_unit_words: int = 6
    short_unit_repeats: int = 3
    long_unit_repeats: int = 2
    sentence_min_words: int = 6
    sentence_containment: float = 0.9
    window_words: int = 40
    min_distinct: float = 0.35
    echo_words: int = 20


DEFAULT_LOOP_POLICY = LoopPolicy()


@dataclass(frozen=True)
class Degeneration:
    """Why a text was judged degenerate, and where its bad part starts.

    Attributes:
        kind: Which check fired.
        start: Character offset in the text where the repeated or copied part begins; the
            text before it passed every check.
        detail: The words concerned, for logs and tests.
    """

    kind: DegenerationKind
    start: int
    detail: str


@dataclass
class _Sentence:
    start: int
    words: frozenset[str]


@dataclass
class LoopWatch:
    """Judges a text as it grows, delta by delta.

    Feed each delta with :meth:`feed`; it returns a :class:`Degeneration` at the first sign
    of one (later deltas are not judged). Call :meth:`finish` after the last delta: the last
    word and sentence have no delimiter after them and are judged then.

    Attributes:
        prompt: The text the model was shown (an answer that copies it at length is an echo).
        markers: Strings of the prompt's scaffolding that never belong in an answer (the
            fence around the material): one of them is an echo wherever it appears.
        policy: Thresholds.
    """

    prompt: str = ""
    markers: tuple[str, ...] = ()
    policy: LoopPolicy = DEFAULT_LOOP_POLICY
    text: str = ""
    found: Degeneration | None = None
    _words: list[str] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list)
    _scanned: int = 0
    _phrases: dict[tuple[str, ...], int] = field(default_factory=dict)
    _sentences: list[_Sentence] = field(default_factory=list)
    _sentence_from: int = 0
    _sentence_word: int = 0
    _echo: frozenset[tuple[str, ...]] | None = None

    def feed(self, delta: str) -> Degeneration | None:
        """Adds ``delta`` and judges the words it completes.

        Args:
            delta: The next piece of the model's text.

        Returns:
            The first degeneration found so far, or None.
        """
        if self.found is not None:
            return self.found
        before = len(self.text)
        self.text += delta
        self._scaffolding(before)
        if self.found is None:
            self._scan(final=False)
        return self.found

    def finish(self) -> Degeneration | None:
        """Judges the last word and sentence (the text is complete).

        Returns:
            The first degeneration of the whole text, or None.
        """
        if self.found is None:
            self._scan(final=True)
        return self.found

    @property
    def word_count(self) -> int:
        """Complete words judged so far."""
        return len(self._words)

    def word_start(self, index: int) -> int:
        """Character offset of judged word ``index`` (negative counts from the end)."""
        return self._starts[index]

    # ---- checks ---------------------------------------------------------------------------

    def _scaffolding(self, before: int) -> None:
        for marker in self.markers:
            at = self.text.find(marker, max(0, before - len(marker) + 1))
            if at >= 0:
                self.found = Degeneration("prompt_echo", at, marker)
                return

    def _scan(self, *, final: bool) -> None:
        for match in _WORD.finditer(self.text, self._scanned):
            if match.end() == len(self.text) and not final:
                break  # the word may go on in the next delta
            self._scanned = match.end()
            self._sentences_before(match.start())
            self._add_word(unicodedata.normalize("NFKC", match.group()).casefold(), match.start())
            if self.found is not None:
                return
        if final:
            self._sentences_before(len(self.text), final=True)

    def _sentences_before(self, offset: int, *, final: bool = False) -> None:
        """Closes every sentence that ends before ``offset`` and judges it."""
        for end in _SENTENCE_END.finditer(self.text, self._sentence_from, offset):
            self._close_sentence(end.end())
            if self.found is not None:
                return
        if final and self._sentence_word < len(self._words):
            self._close_sentence(len(self.text))

    def _close_sentence(self, end: int) -> None:
        index = self._sentence_word
        self._sentence_from = end
        self._sentence_word = len(self._words)
        found = self._words[index:]
        if len(found) < self.policy.sentence_min_words:
            return
        mine = frozenset(found)
        start = self._starts[index]
        for earlier in self._sentences:
            shared = len(mine & earlier.words) / len(mine)
            if shared >= self.policy.sentence_containment:
                self.found = Degeneration("repeated_sentence", start, " ".join(found[:12]))
                return
        self._sentences.append(_Sentence(start, mine))

    def _add_word(self, word: str, start: int) -> None:
        self._words.append(word)
        self._starts.append(start)
        count = len(self._words)
        policy = self.policy
        self._word_list(count)
        if self.found is not None:
            return
        if count >= policy.phrase_words:
            phrase = tuple(self._words[count - policy.phrase_words :])
            first = self._phrases.get(phrase)
            if first is not None and first <= count - 2 * policy.phrase_words:
                at = self._starts[count - policy.phrase_words]
                self.found = Degeneration("repeated_phrase", at, " ".join(phrase))
                return
            self._phrases.setdefault(phrase, count - policy.phrase_words)
        if count >= policy.window_words and count % 4 == 0:
            window = self._words[count - policy.window_words :]
            if len(set(window)) / len(window) < policy.min_distinct:
                at = self._starts[count - policy.window_words]
                self.found = Degeneration("few_distinct", at, " ".join(window[:12]))
                return
        self._echoed(count)

    def _word_list(self, count: int) -> None:
        """A unit of words repeated back to back ("a, b, a, b" or "x, x, x")."""
        policy = self.policy
        for unit in range(1, policy.list_unit_words + 1):
            repeats = policy.short_unit_repeats if unit <= 2 else policy.long_unit_repeats
            span = unit * repeats
            if count < span:
                break
            tail = self._words[count - span :]
            first = tail[:unit]
            if all(tail[i * unit : (i + 1) * unit] == first for i in range(1, repeats)):
                at = self._starts[count - span + unit]
                self.found = Degeneration("word_list", at, " ".join(tail))
                return

    def _echoed(self, count: int) -> None:
        size = self.policy.echo_words
        if count < size or not self.prompt:
            return
        if self._echo is None:
            self._echo = prompt_runs(self.prompt, size)
        run = tuple(self._words[count - size :])
        if run in self._echo:
            self.found = Degeneration("prompt_echo", self._starts[count - size], " ".join(run))


def prompt_runs(prompt: str, size: int) -> frozenset[tuple[str, ...]]:
    """Every run of ``size`` consecutive words of ``prompt`` (case-folded)."""
    found = [unicodedata.normalize("NFKC", m.group()).casefold() for m in _WORD.finditer(prompt)]
    return frozenset(tuple(found[i : i + size]) for i in range(len(found) - size + 1))


def find_degeneration(
    text: str,
    *,
    prompt: str = "",
    markers: tuple[str, ...] = (),
    policy: LoopPolicy = DEFAULT_LOOP_POLICY,
) -> Degeneration | None:
    """The first degeneration of a complete text, or None for clean text.

    Args:
        text: A model's answer (or one field of it).
        prompt: What the model was shown, for the echo check.
        markers: Prompt scaffolding that never belongs in an answer.
        policy: Thresholds.

    Returns:
        The degeneration, or None.
    """
    watch = LoopWatch(prompt=prompt, markers=markers, policy=policy)
    watch.feed(text)
    return watch.finish()


def clean_prefix(text: str, found: Degeneration | None) -> str:
    """The part of ``text`` before its degeneration, cut back to the last sentence end.

    Args:
        text: The text judged.
        found: Its degeneration, or None (the whole text is clean).

    Returns:
        The clean part, stripped; empty when no sentence ended before the loop began.
    """
    if found is None:
        return text.strip()
    head = text[: found.start]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    return head[: ends[-1]].strip() if ends else ""


def word_count(text: str) -> int:
    """Words of ``text`` as the detector counts them."""
    return sum(1 for _ in _WORD.finditer(text))


def near_copies(
    fields: Mapping[str, str], *, min_words: int = 6, containment: float = 0.8
) -> list[tuple[str, str]]:
    """Pairs of fields that hold (nearly) the same text.

    Two fields are near copies when the distinct words of the shorter are ``containment`` or
    more of the longer's: one sentence put in several fields, or one field restating another
    with a word changed. Fields shorter than ``min_words`` (step titles) are not compared.

    Args:
        fields: Field name to text, in order.
        min_words: Shortest text compared, in words.
        containment: Share of the shorter text's distinct words found in the other.

    Returns:
        (earlier, later) field name pairs, in order; empty when every field says its own thing.
    """
    bags: list[tuple[str, frozenset[str]]] = []
    for name, text in fields.items():
        found = [unicodedata.normalize("NFKC", m.group()).casefold() for m in _WORD.finditer(text)]
        if len(found) >= min_words:
            bags.append((name, frozenset(found)))
    pairs: list[tuple[str, str]] = []
    for i, (first, mine) in enumerate(bags):
        for second, theirs in bags[i + 1 :]:
            small, large = (mine, theirs) if len(mine) <= len(theirs) else (theirs, mine)
            if len(small & large) / len(small) >= containment:
                pairs.append((first, second))
    return pairs


def repeated_sentence_rate(texts: Sequence[str], *, min_words: int = 4) -> float:
    """Share of sentences (of ``min_words`` words or more) that repeat an earlier one of the
    same text word for word: the quality benchmark's repetition measure.

    Args:
        texts: Answers.
        min_words: Shorter sentences are not counted.

    Returns:
        Repeated sentences over all counted sentences (0.0 with none).
    """
    total = repeated = 0
    for text in texts:
        seen: set[tuple[str, ...]] = set()
        for sentence in _SENTENCE_END.split(text):
            key = tuple(m.group().casefold() for m in _WORD.finditer(sentence))
            if len(key) < min_words:
                continue
            total += 1
            repeated += key in seen
            seen.add(key)
    return repeated / total if total else 0.0


# A field's sentences as a reader compares them: split at . ! ? ; and line breaks, list
# markers and page labels left out (the quality benchmark's measure, bench/quality_metrics.py).
_FIELD_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_FIELD_MARKUP = re.compile(r"^\s*(?:[#>*\-+]+|\d+[.)])\s*")
_PAGE_LABEL = re.compile(r"[\[(](?:S\d+\s*)?p+\.?\s*[\d,\s\-]+[\])]", re.IGNORECASE)


def sentence_key(sentence: str) -> tuple[str, ...]:
    """A sentence as compared for repeats: its case-folded words, markup and page labels
    left out (``"- Osmosis moves water [p. 1]."`` and ``"osmosis moves water"`` are one).

    Args:
        sentence: One sentence.

    Returns:
        Its words in order; empty for a sentence without words.
    """
    plain = _FIELD_MARKUP.sub("", _PAGE_LABEL.sub(" ", sentence))
    return tuple(unicodedata.normalize("NFKC", m.group()).casefold() for m in _WORD.finditer(plain))


def split_sentences(text: str) -> list[str]:
    """The sentences of a field as :func:`sentence_key` compares them, as written.

    Args:
        text: A field's text.

    Returns:
        Its non-empty sentences, stripped, in order.
    """
    return [part.strip() for part in _FIELD_SENTENCE_END.split(text) if part.strip()]


def copied_field(
    first: str, second: str, *, jaccard: float = 0.8, contained_words: int = 4
) -> bool:
    """Whether one field is a copy of another: nearly the same words, or one of them written
    inside the other.

    Stricter than :func:`near_copies` (which lets a short field inside a long one pass): a
    field of ``contained_words`` words or more whose words occur in the same order inside
    the other is a copy, whatever the other adds.

    Args:
        first: One field.
        second: Another field.
        jaccard: Share of the two fields' distinct words in common (of all their distinct
            words) from which they are copies.
        contained_words: Shortest field that is a copy when found inside the other.

    Returns:
        True for a copy; False when either has no words.
    """
    a, b = sentence_key(first), sentence_key(second)
    if not a or not b:
        return False
    set_a, set_b = set(a), set(b)
    if len(set_a & set_b) / len(set_a | set_b) >= jaccard:
        return True
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if len(shorter) < contained_words:
        return False
    return f" {' '.join(shorter)} " in f" {' '.join(longer)} "
