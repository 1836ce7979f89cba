"""Material split into passages that keep their page numbers.

A passage never crosses a page: its page number is exact, so a citation of it is exact too.
Within a page, whole sentences are packed up to a word limit; a sentence longer than the
limit is split between words. Nothing is lost or repeated: a page's passages, joined,
are the page's words in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from exammentor.llm.client import estimate_tokens
from services.tutor.domain.pdf import PageText, tidy_page_text

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


@dataclass(frozen=True)
class PassagePolicy:
    """How material is cut into passages.

    Attributes:
        max_words: Most words in a passage: about 160 tokens, small enough that a few
            passages fit a small model's prompt next to the question.
    """

    max_words: int = 120


DEFAULT_PASSAGES = PassagePolicy()


class Passage(BaseModel):
    """A piece of one page of the student's material."""

    model_config = ConfigDict(frozen=True)

    material_id: UUID | None
    """The stored material, or None for text attached to the request."""
    page: int = Field(ge=1)
    """The page the text is on (a text without pages is page 1)."""
    position: int = Field(ge=0)
    """Position among the material's passages, from 0."""
    text: str = Field(min_length=1)

    @property
    def tokens(self) -> int:
        """Estimated tokens of the text."""
        return estimate_tokens(self.text)


def _word_runs(text: str, max_words: int) -> Iterable[list[str]]:
    """Whole sentences packed up to ``max_words``; longer sentences split between words."""
    run: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        if not words:
            continue
        if len(run) + len(words) <= max_words:
            run.extend(words)
            continue
        if run:
            yield run
            run = []
        while len(words) > max_words:
            yield words[:max_words]
            words = words[max_words:]
        run = words
    if run:
        yield run


def split_passages(
    pages: Sequence[PageText],
    *,
    material_id: UUID | None = None,
    policy: PassagePolicy = DEFAULT_PASSAGES,
) -> list[Passage]:
    """Cuts material into passages, each on one page.

    Args:
        pages: The material's pages, in order.
        material_id: The stored material, or None for text attached to a request.
        policy: The passage size.

    Returns:
        The passages in reading order, numbered from 0.
    """
    passages: list[Passage] = []
    for page in pages:
        for run in _word_runs(page.text, policy.max_words):
            passages.append(
                Passage(
                    material_id=material_id,
                    page=page.number,
                    position=len(passages),
                    text=" ".join(run),
                )
            )
    return passages


def attached_passages(text: str, policy: PassagePolicy = DEFAULT_PASSAGES) -> list[Passage]:
    """Text attached to a request (``attached_context``) as passages of page 1.

    Args:
        text: The attached text (its length is bounded by the request contract).
        policy: The passage size.

    Returns:
        The passages, with no material id; none for blank text.
    """
    tidy = tidy_page_text(text)
    if not tidy:
        return []
    return split_passages([PageText(number=1, text=tidy)], policy=policy)
