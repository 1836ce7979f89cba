"""Citations computed from the answer: each sentence attributed to the passages it overlaps.

A weak model writes page markers it does not mean ("[p. 3]" after a sentence from page 1) or
none at all (the embedded model never does). So the pages an answer cites are computed, and
the markers it wrote are ignored: every sentence of the answer is compared with every
passage the prompt showed, by n-gram overlap of content words, and the answer cites each
page that supports at least one of its sentences, in order of first support.

Rules this module keeps (thresholds in :class:`AttributionPolicy`, tested in
``tests/unit/tutor/test_attribution.py`` on a small labelled corpus, where n-gram overlap
measured better than BM25):

- A sentence is compared by its **content words** (:func:`~services.tutor.domain.ranking.terms`:
  no stop words), folded to a crude singular, so "reactions" matches "reaction".
- A passage **supports** a sentence when it holds at least ``min_shared`` of the sentence's
  distinct content words and a ``min_share`` of them, or fewer of them but a shared bigram
  (two content words in the same order, adjacent), which a paraphrase rarely produces by
  chance.
- Only the **best** passages of a sentence count: those within ``near_best`` of the best
  score, so a page that shares one general word with a sentence is not cited beside the page
  the sentence comes from.
- Sentences with fewer than ``min_terms`` content words (headings, "Recap:") attribute
  nothing.
- Given the question, only sentences that **bear on it** attribute: those sharing at least
  ``min_question_terms`` content words with it, so a true sentence about something else
  ("DNA replication occurs through the enzyme helicase", in an answer about base pairing)
  does not cite its page beside the one that answers. When no sentence bears on the
  question, every sentence attributes as before, so an answer in other words still cites.
  One of the shared words must be among the question's **most specific** (found on the
  fewest passages): "blood" and "carry" occur on most pages of a text on circulation, so a
  sentence on double circulation does not bear on "Which blood cells carry haemoglobin and
  which make antibodies?", and "decrease" and "group" do not make a sentence on ionisation
  energy bear on why atomic radius decreases across a period. Replayed on the stored answers
  of the bench's embedded runs, stream precision went from 11/13 to 11/11 with recall
  unchanged, and no explanation's citations changed.
  On the stored embedded and scripted bench answers this kept recall and raised stream
  precision from 6/7 to 6/6 (``tests/unit/tutor/test_attribution.py``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from exammentor.contracts.tutor import Citation
from services.tutor.domain.passages import Passage
from services.tutor.domain.ranking import terms

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Page markers the model may write: ignored, so a marker alone never makes a citation.
_MARKER = re.compile(
    r"[\[(]\s*(?:S\s*\d{1,3}\s*[,:;]?\s*)?(?:pp?\.?|pages?)\s*[\d\s,;\u2013-]+[\])]"
)


@dataclass(frozen=True)
class AttributionPolicy:
    """When a passage supports a sentence.

    Attributes:
        min_terms: Sentences with fewer distinct content words attribute nothing.
        min_shared: Content words a sentence must share with a passage.
        min_share: Share of the sentence's content words the passage must hold.
        bigram_share: The lower share that suffices with a shared bigram.
        near_best: Passages scoring at least this fraction of the sentence's best score are
            cited with it.
        min_question_terms: Content words a sentence shares with the question to bear on
            it (with a question given).
    """

    min_terms: int = 3
    min_shared: int = 2
    min_share: float = 0.5
    bigram_share: float = 0.3
    near_best: float = 0.8
    min_question_terms: int = 2


DEFAULT_ATTRIBUTION = AttributionPolicy()


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The content words of ``text``, in order, folded to a crude singular."""
    return [_stem(word) for word in terms(text)]


def sentences(text: str) -> list[str]:
    """The sentences (and lines) of an answer, page markers removed."""
    plain = _MARKER.sub(" ", text)
    return [s.strip() for s in _SENTENCE_END.split(plain) if s.strip()]


def _bigrams(found: Sequence[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(found))


def support(
    sentence: str, passages: Sequence[Passage], policy: AttributionPolicy = DEFAULT_ATTRIBUTION
) -> list[Passage]:
    """The passages that support ``sentence``, best first.

    Args:
        sentence: One sentence of an answer.
        passages: The passages the prompt showed.
        policy: Thresholds.

    Returns:
        The supporting passages within ``near_best`` of the best; empty when none supports it.
    """
    mine = content_words(sentence)
    wanted = set(mine)
    if len(wanted) < policy.min_terms:
        return []
    pairs = _bigrams(mine)
    scored: list[tuple[float, int, Passage]] = []
    for index, passage in enumerate(passages):
        theirs = content_words(passage.text)
        shared = len(wanted.intersection(theirs))
        if shared < policy.min_shared:
            continue
        share = shared / len(wanted)
        bigram = bool(pairs & _bigrams(theirs))
        if share >= policy.min_share or (bigram and share >= policy.bigram_share):
            scored.append((share + (0.25 if bigram else 0.0), index, passage))
    if not scored:
        return []
    best = max(score for score, _, _ in scored)
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [passage for score, _, passage in scored if score >= policy.near_best * best]


def _most_specific(asked: set[str], passages: Sequence[Passage]) -> set[str]:
    """The question's words found on the fewest passages (at least one): what sets the
    question apart within the material (empty when none of its words is in it)."""
    holding = {w: sum(w in set(content_words(p.text)) for p in passages) for w in asked}
    found = [n for n in holding.values() if n]
    return {w for w, n in holding.items() if found and n == min(found)}


def attribute(
    answer: str,
    passages: Sequence[Passage],
    policy: AttributionPolicy = DEFAULT_ATTRIBUTION,
    *,
    question: str = "",
) -> list[Citation]:
    """The pages ``answer`` draws on, each once, in order of first support.

    Args:
        answer: The answer (markdown or the fields of an explanation joined by lines).
        passages: The passages the prompt showed.
        policy: Thresholds.
        question: What the student asked: when given, only the sentences that bear on it
            attribute, unless none does.

    Returns:
        The citations; none when no sentence is supported by a passage.
    """
    supported = [(s, support(s, passages, policy)) for s in sentences(answer)]
    supported = [(s, sources) for s, sources in supported if sources]
    if question:
        asked = set(content_words(question))
        specific = _most_specific(asked, passages)
        bearing = [
            (s, sources)
            for s, sources in supported
            if len(shared := asked.intersection(content_words(s))) >= policy.min_question_terms
            and (not specific or shared & specific)
        ]
        supported = bearing or supported
    found: list[Citation] = []
    for _, sources in supported:
        for passage in sources:
            citation = Citation(page=passage.page, material_id=passage.material_id)
            if citation not in found:
                found.append(citation)
    return found
