"""What the tutor shows when the model loops: checked text, the clean part, or extracts.

The streamed answers (``tutor.stream``, ``tutor.lesson``) are judged as they are written by
the kit's :class:`~exammentor.llm.degenerate_text.LoopWatch`. Rules this module keeps:

- **Held back, then shown.** A token reaches the client only once ``hold_words`` more words
  have been judged after it (:meth:`StreamChecks.relay_end`), at a sentence end where there
  is one, so a loop is caught before the client sees it.
- **Kept, retried or replaced.** A round that loops is stopped. Its clean part (up to the
  last sentence end before the loop) is the answer when it has ``keep_words`` or more;
  otherwise the next round samples more freely with a changed prompt. When no round reaches
  ``keep_words``, the student's own material that matches the question is quoted with its
  pages (:func:`extract_markdown`), labelled as extracts; without material, the longest
  clean part of ``min_words`` or more; else a declared error (:func:`final_answer`).
- **Nothing unchecked is stored**: the final text always passed the detector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from exammentor.llm.answers import clip
from exammentor.llm.degenerate_text import LoopWatch, word_count
from services.tutor.domain.passages import Passage

EXTRACT_HEADING = "**From your material** (extracts: the model's answer did not pass the check)"
"""The first line of an answer made of the student's own passages."""

RETRY_RULE = (
    "Write new sentences. Never repeat a word, a list or a sentence, and do not copy the "
    "material or these instructions."
)
"""Added to the system message of every retry round (another prompt shape, not only other
sampling)."""

SCAFFOLDING = ("<<<", "<|im_")
"""Pieces of the prompt's frame that no answer may contain (the material fence, chat-template
markers): the model copying its prompt back. Material is neutralised, so it never holds them."""

_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclass(frozen=True)
class StreamChecks:
    """How a streamed answer is checked and what is kept.

    Attributes:
        hold_words: Words judged after a token before it is relayed (the detector fires at
            most 8 words after a repeated phrase or a word list begins, well within this).
        keep_words: A looping round's clean part this long or longer is the answer.
        min_words: Shortest clean part shown when no round reached ``keep_words`` and there
            is no material to quote.
        extract_passages: Most passages quoted when every round failed.
        extract_chars: Most characters kept of each quoted passage.
    """

    hold_words: int = 24
    keep_words: int = 60
    min_words: int = 25
    extract_passages: int = 3
    extract_chars: int = 700

    def for_lesson(self, target_words: int) -> StreamChecks:
        """The checks of a lesson of ``target_words``: a third of it is enough to keep."""
        keep = max(self.min_words, min(self.keep_words, target_words // 3))
        return StreamChecks(
            self.hold_words, keep, self.min_words, self.extract_passages, self.extract_chars
        )

    def relay_end(self, watch: LoopWatch, shown: int) -> int:
        """How far the text judged by ``watch`` may be relayed (a character offset).

        Args:
            watch: The round's detector, with no degeneration found.
            shown: Characters of this round's text already relayed.

        Returns:
            The offset up to which the text may be shown: the last sentence end at least
            ``hold_words`` words before the newest judged word, or that word boundary itself
            when no sentence ended for twice that many words; never before ``shown``.
        """
        if watch.word_count <= self.hold_words:
            return shown
        limit = watch.word_start(-self.hold_words - 1)
        ends = [m.end() for m in _SENTENCE_END.finditer(watch.text, shown, limit)]
        if ends:
            return ends[-1]
        if watch.word_count > 2 * self.hold_words and word_count(watch.text[shown:limit]) > (
            self.hold_words
        ):
            return limit
        return shown


DEFAULT_STREAM_CHECKS = StreamChecks()


def extract_markdown(passages: Sequence[Passage], limit: int = 700) -> str:
    """The student's own passages as a labelled answer, each with its page.

    Args:
        passages: The passages that match the question, best first.
        limit: Most characters of each.

    Returns:
        Markdown: the heading, then one quoted passage per paragraph with ``[p. N]``.
    """
    quoted = [f"> {clip(p.text, limit)} [p. {p.page}]" for p in passages]
    return "\n\n".join([EXTRACT_HEADING, *quoted])


Outcome = Literal["model", "extract", "unusable"]


@dataclass(frozen=True)
class FinalAnswer:
    """What a stream comes to after its rounds.

    Attributes:
        markdown: The text to show and store (empty when ``source`` is ``unusable``).
        source: ``model``, ``extract``, or ``unusable`` (a declared error).
        passages: The passages quoted (``extract`` only).
    """

    markdown: str
    source: Outcome
    passages: tuple[Passage, ...] = ()


def final_answer(
    clean_parts: Sequence[str], matching: Sequence[Passage], checks: StreamChecks
) -> FinalAnswer:
    """The answer when no round finished clean and none reached ``keep_words``.

    Args:
        clean_parts: Each round's clean part, in round order.
        matching: The passages of the request's material that match the question, best first.
        checks: The thresholds.

    Returns:
        Extracts of ``matching`` when there are any; else the longest clean part with at
        least ``min_words`` words; else an unusable answer.
    """
    if matching:
        chosen = tuple(matching[: checks.extract_passages])
        return FinalAnswer(extract_markdown(chosen, checks.extract_chars), "extract", chosen)
    longest = max(clean_parts, key=word_count, default="")
    if word_count(longest) >= checks.min_words:
        return FinalAnswer(longest, "model")
    return FinalAnswer("", "unusable")
