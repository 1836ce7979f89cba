"""Ranking passages against a question with BM25 (``rank_bm25.BM25Okapi``).

Words are case-folded and stripped of punctuation; a short list of English function words is
left out, because in a handful of passages BM25's floor on inverse document frequency still
gives "the" or "what" a positive weight, and a question would then match every passage.
Only passages that share a content word with the question are returned: material that does
not mention the question is not evidence for the answer. In very small sets of passages
BM25Okapi's inverse document frequency is zero or negative for a word in half of them or more
(``log((N - n + 0.5) / (n + 0.5))``), so passages are ordered by score, then by how many of
the question's distinct words they hold, then by reading order.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from rank_bm25 import BM25Okapi

from exammentor.llm.answers import words
from services.tutor.domain.passages import Passage

_STOP_WORDS_TEXT = """a about above after again all also am an and any are as at be because been
    before
    being below between both but by can could did do does doing down during each explain
    few for from further had has have having he her here hers him his how i if in into is
    it its itself just me more most my no nor not now of off on once only or other our out
    over own please same she should so some such tell than that the their them then there
    these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""Words that carry no topic: left out of the question and of the passages."""

LABEL_TOKENS = 8
"""Tokens a passage's label and separators take in the prompt."""


class RankedPassage(BaseModel):
    """A passage and its BM25 score against the question."""

    model_config = ConfigDict(frozen=True)

    passage: Passage
    score: float


def terms(text: str) -> list[str]:
    """The words of ``text`` that BM25 compares: case-folded, no punctuation, no stop words.

    Args:
        text: A question or a passage.

    Returns:
        The terms, in order.
    """
    return [word for word in words(text) if word not in STOP_WORDS]


def rank_passages(question: str, passages: Sequence[Passage]) -> list[RankedPassage]:
    """The passages that match ``question``, best first.

    Args:
        question: What the student asks (topic and context).
        passages: Candidate passages.

    Returns:
        Passages that share a word with the question, highest score first (then more of
        the question's words, then the order of ``passages``).
    """
    query = terms(question)
    corpus = [(passage, terms(passage.text)) for passage in passages]
    # BM25Okapi divides by the mean passage length: passages without terms cannot be ranked
    # and would only pull the mean down.
    corpus = [(passage, found) for passage, found in corpus if found]
    if not query or not corpus:
        return []
    scores = BM25Okapi([found for _, found in corpus]).get_scores(query)
    wanted = set(query)
    ranked: list[tuple[float, int, int, Passage]] = []
    for i, ((passage, found), score) in enumerate(zip(corpus, scores, strict=True)):
        shared = len(wanted.intersection(found))
        if shared:
            ranked.append((float(score), shared, i, passage))
    ranked.sort(key=lambda item: (-item[0], -item[1], item[2]))
    return [RankedPassage(passage=passage, score=score) for score, _, _, passage in ranked]


def select_passages(
    question: str,
    passages: Sequence[Passage],
    *,
    budget_tokens: int,
    max_passages: int | None = None,
) -> list[RankedPassage]:
    """The best passages for ``question`` that fit in ``budget_tokens``, best first.

    A passage that does not fit is skipped and the next one tried, so a long passage does not
    keep shorter, slightly less relevant ones out.

    Args:
        question: What the student asks.
        passages: Candidate passages.
        budget_tokens: Tokens the passages may take in the prompt, labels included
            (:data:`LABEL_TOKENS` each).
        max_passages: Most passages returned, or None for no limit beyond the budget.

    Returns:
        The chosen passages, highest score first.
    """
    chosen: list[RankedPassage] = []
    used = 0
    for ranked in rank_passages(question, passages):
        if max_passages is not None and len(chosen) >= max_passages:
            break
        cost = ranked.passage.tokens + LABEL_TOKENS
        if used + cost <= budget_tokens:
            chosen.append(ranked)
            used += cost
    return chosen
