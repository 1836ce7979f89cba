"""Explanations: the depth a difficulty asks for, and repair of what a model wrote.

A weak model's explanation is often off: no steps, an empty pitfall, a loop of the same
sentence, steps numbered 1, 1, 3. Repair never fails. Each part is cleaned, repeated
sentences are dropped, and a part that is still unusable (missing, not text, empty,
looping) is replaced by text of our own; steps are renumbered 1..n in the order written.
:attr:`RepairedExplanation.repairs` says which parts are ours, so the service can log how
often the model is off and the student is never shown a 5xx instead of an answer.

The draft is whatever the model's JSON parsed to (a mapping, or None when it did not parse),
so repair makes no assumption about its shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from exammentor.contracts.tutor import (
    MAX_STEPS,
    Difficulty,
    MultimodalExplanation,
    TutorExplanation,
    TutorStep,
    VisualReference,
)
from exammentor.llm.answers import clean, clip, is_degenerate, words
from services.tutor.domain.passages import Passage

DEPTH: dict[Difficulty, str] = {
    "easy": (
        "Explain for a beginner: everyday words, no formulas unless essential, one idea per "
        "step, and an analogy for the hardest step."
    ),
    "medium": (
        "Explain for a student preparing for the exam: define the terms, give the key "
        "formula or rule with what each symbol means, and work one short example."
    ),
    "hard": (
        "Explain in depth for a strong student: state the assumptions and limits, derive or "
        "justify the key result, and cover the edge cases examiners ask about."
    ),
}
"""The depth instruction of each difficulty (the original's meaning of ``difficulty``)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def depth_instruction(difficulty: Difficulty) -> str:
    """How deep an explanation at ``difficulty`` goes, as an instruction for the model.

    Args:
        difficulty: easy, medium or hard.

    Returns:
        One or two sentences for the system message.
    """
    return DEPTH[difficulty]


@dataclass(frozen=True)
class ExplanationLimits:
    """Most characters kept of each part (longer text is clipped, not refused)."""

    intuition: int = 200
    title: int = 80
    content: int = 1_200
    analogy: int = 300
    example: int = 600
    pitfall: int = 400
    question: int = 400
    region: int = 80
    description: int = 400
    image_explanation: int = 2_000
    max_steps: int = MAX_STEPS
    max_visual_references: int = 6


DEFAULT_LIMITS = ExplanationLimits()


class RepairedExplanation(BaseModel):
    """An explanation fit to show, and which of its parts are our own text."""

    model_config = ConfigDict(frozen=True)

    explanation: TutorExplanation
    repairs: tuple[str, ...]
    """Parts replaced by our own text or fixed (``steps``, ``step_numbers``, ...)."""


class RepairedImageExplanation(BaseModel):
    """An image explanation fit to show, and which of its parts are our own text."""

    model_config = ConfigDict(frozen=True)

    explanation: MultimodalExplanation
    repairs: tuple[str, ...]


def usable_text(value: object, limit: int) -> str | None:
    """A model's text as it may be shown, or None when it cannot be used.

    Args:
        value: Anything the model put in a field.
        limit: Most characters kept (clipped with an ellipsis beyond).

    Returns:
        The text on one line, repeated sentences dropped, clipped; None for non-text, empty
        or looping text.
    """
    if not isinstance(value, str):
        return None
    sentences: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for sentence in _SENTENCE_END.split(clean(value)):
        key = tuple(words(sentence))
        if key and key not in seen:
            seen.add(key)
            sentences.append(sentence)
    text = " ".join(sentences)
    if not words(text) or is_degenerate(text):
        return None
    return clip(text, limit)


OwnField = Literal["intuition", "real_world_example", "common_pitfall", "practice_question"]


def own_field(name: OwnField, topic: str) -> str:
    """Text of our own for a field the model left unusable (honest advice, never an invented
    fact about the topic).

    Args:
        name: The field.
        topic: The topic asked about.

    Returns:
        The text.
    """
    if topic.rstrip().endswith("?"):
        # A question asked as the topic reads wrong inside "Look for {topic} ...".
        asked: dict[OwnField, str] = {
            "intuition": "The answer in short steps: each step below gives one part of it.",
            "real_world_example": (
                "Think of a case you know where this answer shows, and say which step above "
                "it matches."
            ),
            "common_pitfall": (
                "Remembering the answer without the conditions and reasons the steps give."
            ),
            "practice_question": f"Without looking: {topic.strip()} Answer in your own words.",
        }
        return asked[name]
    texts: dict[OwnField, str] = {
        "intuition": f"{topic}: what it is, why it holds, and how to use it, one step at a time.",
        "real_world_example": (
            f"Look for {topic} in something you use or see every day, and say which step "
            "above it shows."
        ),
        "common_pitfall": (
            f"Learning the result of {topic} without the conditions under which it holds."
        ),
        "practice_question": f"In your own words, explain {topic} and give one example of it.",
    }
    return texts[name]


def _first_sentence(text: str, limit: int) -> str:
    return clip(_SENTENCE_END.split(text)[0], limit)


def _title_from(content: str, limit: int) -> str:
    first = content.split()[:6]
    return clip(" ".join(first).rstrip(".,;:"), limit)


def own_steps(
    topic: str, passages: Sequence[Passage] = (), limits: ExplanationLimits = DEFAULT_LIMITS
) -> list[TutorStep]:
    """Steps of our own, for when the model wrote none that can be used.

    With material, the steps quote the best passages with their pages; without, they are a
    method for studying the topic (honest, not an invented explanation).

    Args:
        topic: The topic.
        passages: The passages given to the model, best first.
        limits: Character limits.

    Returns:
        At least one step.
    """
    if passages:
        return [
            TutorStep(
                step_number=number,
                title=f"From your material, page {passage.page}",
                content=clip(passage.text, limits.content),
            )
            for number, passage in enumerate(passages[:3], start=1)
        ]
    if topic.rstrip().endswith("?"):
        return [
            TutorStep(
                step_number=1,
                title="Name the terms",
                content="List the terms the question uses and write what each means.",
            ),
            TutorStep(
                step_number=2,
                title="Find what it turns on",
                content="Find the rule, fact or formula the question turns on, and when it holds.",
            ),
            TutorStep(
                step_number=3,
                title="Answer and check",
                content="Write the answer in two or three sentences; check each in your notes.",
            ),
        ]
    return [
        TutorStep(
            step_number=1,
            title="Pin down the definition",
            content=f"Write down what {topic} means in one sentence and the terms it uses.",
        ),
        TutorStep(
            step_number=2,
            title="Find the key rule",
            content=f"Find the main rule or formula of {topic} and what each part stands for.",
        ),
        TutorStep(
            step_number=3,
            title="Work an example",
            content=f"Solve one worked example of {topic} step by step, then one on your own.",
        ),
    ]


def _repair_steps(raw: object, limits: ExplanationLimits) -> tuple[list[TutorStep], list[str]]:
    """Usable steps of a draft, renumbered, and what was fixed."""
    fixes: list[str] = []
    items = raw if isinstance(raw, list) else []
    steps: list[TutorStep] = []
    seen: set[tuple[str, ...]] = set()
    numbers: list[object] = []
    for item in items:
        if len(steps) >= limits.max_steps:
            fixes.append("steps_cut")
            break
        if not isinstance(item, Mapping):
            continue
        content = usable_text(item.get("content"), limits.content)
        key = tuple(words(content or ""))
        if content is None or key in seen:
            continue
        seen.add(key)
        numbers.append(item.get("step_number"))
        title = usable_text(item.get("title"), limits.title) or _title_from(content, limits.title)
        analogy = usable_text(item.get("analogy"), limits.analogy)
        if analogy is not None and tuple(words(analogy)) == key:
            analogy = None
        steps.append(
            TutorStep(step_number=len(steps) + 1, title=title, content=content, analogy=analogy)
        )
    if len(steps) < len(items):
        fixes.append("steps_dropped")
    if numbers != list(range(1, len(steps) + 1)):
        fixes.append("step_numbers")
    return steps, fixes


def repair_explanation(
    draft: Mapping[str, object] | None,
    *,
    topic: str,
    passages: Sequence[Passage] = (),
    limits: ExplanationLimits = DEFAULT_LIMITS,
) -> RepairedExplanation:
    """A :class:`TutorExplanation` from whatever the model wrote; never fails.

    Args:
        draft: The model's answer in the original's shape (``intuition``, ``steps``
            [{``step_number``, ``title``, ``content``, ``analogy``}],
            ``real_world_example``, ``common_pitfall``, ``practice_question``), or None.
        topic: The topic asked about (the answer's ``topic`` is always this).
        passages: The material given to the model, for steps of our own.
        limits: Character limits.

    Returns:
        The explanation and the parts that were repaired.
    """
    raw: Mapping[str, object] = draft if draft is not None else {}
    repairs: list[str] = []

    def part(name: str, limit: int, fallback: str) -> str:
        text = usable_text(raw.get(name), limit)
        if text is None:
            repairs.append(name)
            return fallback
        return text

    intuition_text = usable_text(raw.get("intuition"), limits.intuition * 2)
    if intuition_text is None and draft is None and passages:
        # No model text at all: the steps quote the material, and the first line says so.
        repairs.append("intuition")
        pages = ", ".join(dict.fromkeys(str(p.page) for p in passages[:3]))
        intuition = clip(f"What your material says about {topic} (p. {pages}):", limits.intuition)
    elif intuition_text is None:
        repairs.append("intuition")
        intuition = own_field("intuition", topic)
    else:
        # One line, as the original's client shows it.
        intuition = _first_sentence(intuition_text, limits.intuition)
    steps, step_fixes = _repair_steps(raw.get("steps"), limits)
    if not steps:
        repairs.append("steps")
        steps = own_steps(topic, passages, limits)
    else:
        repairs.extend(step_fixes)
    example = part("real_world_example", limits.example, own_field("real_world_example", topic))
    pitfall = part("common_pitfall", limits.pitfall, own_field("common_pitfall", topic))
    question = usable_text(raw.get("practice_question"), limits.question)
    if question is None:
        repairs.append("practice_question")
        question = own_field("practice_question", topic)
    return RepairedExplanation(
        explanation=TutorExplanation(
            topic=topic,
            intuition=intuition,
            steps=steps,
            real_world_example=example,
            common_pitfall=pitfall,
            practice_question=question,
        ),
        repairs=tuple(repairs),
    )


def repair_image_explanation(
    draft: Mapping[str, object] | None,
    *,
    topic: str,
    limits: ExplanationLimits = DEFAULT_LIMITS,
) -> RepairedImageExplanation:
    """A :class:`MultimodalExplanation` from whatever the model wrote; never fails.

    Nothing is invented about the image: visual references that cannot be used are dropped,
    not replaced, and the text of our own says that the image was not explained.

    Args:
        draft: The model's answer in the original's shape, or None.
        topic: The topic asked about.
        limits: Character limits.

    Returns:
        The explanation and the parts that were repaired.
    """
    raw: Mapping[str, object] = draft if draft is not None else {}
    repairs: list[str] = []
    intuition = usable_text(raw.get("intuition"), limits.intuition * 2)
    if intuition is None:
        repairs.append("intuition")
        intuition = f"How this image relates to {topic}."
    else:
        intuition = _first_sentence(intuition, limits.intuition)
    references: list[VisualReference] = []
    items = raw.get("visual_references")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping) or len(references) >= limits.max_visual_references:
            continue
        label = usable_text(item.get("label"), limits.title)
        description = usable_text(item.get("description"), limits.description)
        if label is None or description is None:
            continue
        region = usable_text(item.get("region"), limits.region) or "not stated"
        references.append(VisualReference(label=label, region=region, description=description))
    if isinstance(items, list) and len(references) < len(items):
        repairs.append("visual_references")
    explanation = usable_text(raw.get("explanation"), limits.image_explanation)
    if explanation is None:
        repairs.append("explanation")
        explanation = (
            f"No reliable explanation of this image could be written. Ask again, or describe "
            f"what the image shows and ask how it relates to {topic}."
        )
    deep_dive, step_fixes = _repair_steps(raw.get("deep_dive"), limits)
    repairs.extend(f"deep_dive.{fix}" for fix in step_fixes)
    question = usable_text(raw.get("practice_question"), limits.question)
    if question is None:
        repairs.append("practice_question")
        question = f"What does this image show about {topic}? Explain it in your own words."
    return RepairedImageExplanation(
        explanation=MultimodalExplanation(
            topic=topic,
            intuition=intuition,
            visual_references=references,
            explanation=explanation,
            deep_dive=deep_dive,
            practice_question=question,
        ),
        repairs=tuple(repairs),
    )
