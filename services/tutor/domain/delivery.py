"""What the tutor delivers: every answer supported by the student's material, and no field of
an explanation repeating another.

The embedded model's answers often pass the loop check yet draw on nothing the student gave
(an answer off the question, or cut off mid-sentence, cites no page), and its explanations
put one sentence in two fields. The product makes such output usable with text it can
compute. Rules this module keeps:

- **The answering passages** of a question are those that support the question itself, by
  the same overlap as citations (:func:`~services.tutor.domain.attribution.support`); on the
  quality corpus they are exactly the known page of each of its 35 questions.
- **Supported or grounded.** An answer that no answering passage supports is delivered with
  those passages quoted after it, under :data:`SUPPORT_HEADING` with their pages
  (:func:`with_support`), so every answer shown with material cites the page that answers.
- **Off the question.** A sentence of an explanation supported only by passages that do not
  answer the question is dropped: it is about another page of the material.
- **Something to say.** A field of fewer than :data:`MIN_FIELD_WORDS` words (the embedded
  model writes steps "1", "2", "3" and an intuition "MATERIAL") is not delivered.
- **Each sentence once.** A sentence of an explanation that repeats one of an earlier field
  (compared as :func:`~exammentor.llm.degenerate_text.sentence_key`) is dropped, and a field
  that copies another (:func:`~exammentor.llm.degenerate_text.copied_field`) is not delivered:
  its place takes text of our own (:func:`~services.tutor.domain.explanation.own_field`), a
  step goes, an analogy is left out, a step title becomes "Step N".

Pure: no I/O, no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from exammentor.contracts.tutor import TutorExplanation, TutorStep
from exammentor.llm.answers import clip
from exammentor.llm.degenerate_text import copied_field, sentence_key, split_sentences
from services.tutor.domain.attribution import attribute, support
from services.tutor.domain.explanation import (
    DEFAULT_LIMITS,
    ExplanationLimits,
    OwnField,
    own_field,
    own_steps,
)
from services.tutor.domain.passages import Passage

MIN_FIELD_WORDS = 3
"""A field (step titles aside) of fewer words says nothing and is not delivered."""

SUPPORT_HEADING = "**From your material** (extract)"
"""The line before passages quoted beside the model's answer, which they support."""


def answering_passages(question: str, passages: Sequence[Passage]) -> list[Passage]:
    """The passages that answer ``question``, best first (none when none supports it).

    Args:
        question: What the student asks (topic and context).
        passages: The passages the prompt showed, best first.

    Returns:
        The passages that support the question.
    """
    return support(question, passages)


def _cites(answer: str, wanted: Sequence[Passage], passages: Sequence[Passage]) -> bool:
    pages = {(p.material_id, p.page) for p in wanted}
    return any((c.material_id, c.page) in pages for c in attribute(answer, passages))


def with_support(
    markdown: str,
    question: str,
    passages: Sequence[Passage],
    *,
    limit: int = 700,
) -> str:
    """``markdown`` as delivered: followed by the passages that answer the question when it
    draws on none of them.

    Args:
        markdown: The model's checked answer.
        question: What the student asks.
        passages: The passages the prompt showed, best first.
        limit: Most characters quoted of each passage.

    Returns:
        The answer unchanged when it cites an answering passage or there is no material;
        else the answer, :data:`SUPPORT_HEADING` and each answering passage (the best
        passage when none answers) quoted with ``[p. N]``.
    """
    if not passages:
        return markdown
    answering = answering_passages(question, passages) or list(passages[:1])
    if _cites(markdown, answering, passages):
        return markdown
    quoted = [f"> {clip(p.text, limit)} [p. {p.page}]" for p in answering]
    return "\n\n".join([markdown.rstrip(), SUPPORT_HEADING, *quoted])


@dataclass
class _Fields:
    """The sentences delivered so far, and the fields they make up."""

    off_question: Sequence[Passage]
    passages: Sequence[Passage]
    seen: set[tuple[str, ...]] = field(default_factory=set)
    delivered: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    def keep(self, name: str, text: str, *, compare: bool = True) -> str:
        """The part of ``text`` that may be delivered ('' for none), recorded as delivered."""
        kept: list[str] = []
        keys: list[tuple[str, ...]] = []
        for sentence in split_sentences(text):
            key = sentence_key(sentence)
            if not key or key in self.seen or key in keys or self._off(sentence):
                continue
            kept.append(sentence)
            keys.append(key)
        result = " ".join(kept)
        if compare and len(sentence_key(result)) < MIN_FIELD_WORDS:
            result = ""  # "1", "A", "MATERIAL": what the embedded model puts in a step
        if compare and result and any(copied_field(result, d) for d in self.delivered):
            result = ""
        if result != " ".join(split_sentences(text)):
            self.fixes.append(name)
        if result:
            self.seen.update(keys)
            if compare:
                self.delivered.append(result)
        return result

    def _off(self, sentence: str) -> bool:
        if not self.off_question:
            return False
        found = support(sentence, self.passages)
        return bool(found) and not any(p in self.off_question for p in found)


def distinct_fields(
    explanation: TutorExplanation,
    *,
    question: str,
    passages: Sequence[Passage] = (),
    limits: ExplanationLimits = DEFAULT_LIMITS,
) -> tuple[TutorExplanation, list[str]]:
    """The explanation as delivered: grounded, each sentence once, no field a copy of another.

    Args:
        explanation: The repaired explanation.
        question: What the student asks (topic and context).
        passages: The passages the prompt showed, best first.
        limits: Character limits of quoted passages.

    Returns:
        The explanation and the fields changed (empty when none was).
    """
    answering = answering_passages(question, passages)
    first = _distinct(explanation, answering, passages, limits)
    if not passages:
        return first
    quoted = answering or list(passages[:1])
    # Only what the model wrote or the material says counts: our own fields restate the
    # topic, whose words are the question's.
    topic = explanation.topic
    ours = {own_field(name, topic) for name in _OWN_FIELDS} | {
        step.content for step in own_steps(topic)
    }
    text = "\n".join(t for t in _texts(first[0]) if t not in ours)
    if _cites(text, quoted, passages):
        return first
    # No field draws on the page that answers the question: its passages lead the steps.
    steps = [
        TutorStep(
            step_number=1,
            title=f"From your material, page {p.page}",
            content=clip(p.text, limits.content),
        )
        for p in quoted[:2]
    ]
    grounded = first[0].model_copy(update={"steps": [*steps, *first[0].steps]})
    result, fixes = _distinct(grounded, answering, passages, limits)
    return result, [*first[1], "grounded", *fixes]


_OWN_FIELDS: tuple[OwnField, ...] = (
    "intuition",
    "real_world_example",
    "common_pitfall",
    "practice_question",
)


def _restates(text: str, topic: str) -> bool:
    """Whether ``text`` is the topic's words again (all of them in it, in order, or nearly
    the same words), adding none."""
    said, asked = sentence_key(text), sentence_key(topic)
    return bool(said) and len(said) <= len(asked) and copied_field(text, topic)


def _texts(explanation: TutorExplanation) -> list[str]:
    parts = [explanation.intuition]
    for step in explanation.steps:
        parts += [step.title, step.content, step.analogy or ""]
    parts += [
        explanation.real_world_example,
        explanation.common_pitfall,
        explanation.practice_question or "",
    ]
    return [p for p in parts if p.strip()]


def _distinct(
    explanation: TutorExplanation,
    answering: Sequence[Passage],
    passages: Sequence[Passage],
    limits: ExplanationLimits,
) -> tuple[TutorExplanation, list[str]]:
    topic = explanation.topic
    fields = _Fields(off_question=answering, passages=passages)

    def said(name: str, text: str) -> str:
        # A field that only restates the question says nothing; and every field of our own,
        # which names the topic, would hold it (the embedded model's intuition "The
        # Kesavananda Bharati case" for "What did the Kesavananda Bharati case decide ...?").
        if _restates(text, topic):
            fields.fixes.append(name)
            return ""
        return text

    intuition = fields.keep("intuition", said("intuition", explanation.intuition)) or fields.keep(
        "intuition", own_field("intuition", topic)
    )
    contents: list[tuple[TutorStep, str, str | None]] = []
    for step in explanation.steps:
        name = f"steps[{step.step_number}].content"
        content = fields.keep(name, said(name, step.content))
        if not content:
            continue
        analogy = step.analogy and fields.keep(f"steps[{step.step_number}].analogy", step.analogy)
        contents.append((step, content, analogy or None))
    if not contents:
        # Steps of our own: the answering passages quoted, else a study method.
        fields.fixes.append("steps")
        for own in (own_steps(topic, answering or passages, limits), own_steps(topic)):
            for step in own:
                content = fields.keep("steps", step.content)
                if content:
                    contents.append((step, content, None))
            if contents:
                break
        if not contents:
            step = own_steps(topic)[0]
            contents.append((step, step.content, None))
    others: dict[OwnField, str] = {}
    for name in _OWN_FIELDS[1:]:
        value = said(name, str(getattr(explanation, name) or ""))
        fallback = own_field(name, topic)
        others[name] = fields.keep(name, value) or fields.keep(name, fallback) or fallback
    steps: list[TutorStep] = []
    for number, (step, content, analogy) in enumerate(contents, start=1):
        title = fields.keep(f"steps[{number}].title", step.title, compare=False)
        if not title:
            title = f"Step {number}"
            fields.seen.add(sentence_key(title))
        steps.append(TutorStep(step_number=number, title=title, content=content, analogy=analogy))
    result = TutorExplanation(
        topic=topic,
        intuition=intuition or own_field("intuition", topic),
        steps=steps,
        real_world_example=others["real_world_example"],
        common_pitfall=others["common_pitfall"],
        practice_question=others["practice_question"],
    )
    return result, fields.fixes
