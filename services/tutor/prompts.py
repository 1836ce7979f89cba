"""Every prompt the tutor sends, the schema of each answer, and how each answer is read.

The prompts follow the planner's rules for a weak model: a few lines of instruction, small
JSON answers with fixed keys (``t1``/``s1`` for a step's title and content), every item
screened, and text of our own where an item cannot be used (the domain's repair), so an
explanation never fails because the model was off.

Every prompt is built within the model's window (:func:`tutor_prompt`): the answer's cap and
the instructions first, then the student's context, the best passages of their material and
the newest chat turns, by the token shares of the :class:`TutorPolicy`. Material and the
student's own text are fenced or neutralised (``services.tutor.domain.grounding``), so no
text from a PDF or a chat can pose as an instruction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from exammentor.contracts.tutor import (
    MAX_DESCRIPTION_CHARS,
    AnswerSource,
    ChatTurn,
    Difficulty,
    ExplainRequest,
    Lesson,
    LessonRequest,
    TutorExplanation,
)
from exammentor.llm.answers import (
    ANSWER_CONFIG,
    JSON_ONLY,
    check_mostly_usable,
    is_degenerate,
    words,
)
from exammentor.llm.degenerate_text import find_degeneration, near_copies
from exammentor.llm.messages import ChatMessage, estimate_tokens
from services.tutor.domain import (
    DEFAULT_POLICY,
    MATERIAL_RULES,
    SCAFFOLDING,
    Grounding,
    HistoryWindow,
    Passage,
    RepairedExplanation,
    RepairedImageExplanation,
    TutorPolicy,
    VisionMessage,
    attached_passages,
    attribute,
    choose_material,
    clip_to_tokens,
    depth_instruction,
    fit_history,
    image_message,
    message_tokens,
    neutralise,
    repair_explanation,
    repair_image_explanation,
    split_budget,
    usable_text,
)

IMAGE_EXPLANATION_MAX_TOKENS = 800
DESCRIPTION_MAX_TOKENS = 1_200
"""Caps on generated tokens of the image answers (a description is at most 8,000
characters, about 2,000 tokens; a study description needs far fewer)."""

FENCE_TOKENS = 16
"""Tokens of the fence lines around the material."""

MAX_VISUAL_REFERENCES = 4
MAX_DEEP_DIVE_STEPS = 4

PromptKind = Literal["explain", "stream", "lesson"]

_TUTOR = "You are a patient, precise tutor for students preparing for competitive exams."


# --- Prompt assembly ---------------------------------------------------------------------


@dataclass(frozen=True)
class TutorPrompt:
    """A prompt within the model's window, and what the answer may cite.

    Attributes:
        messages: System message, the chat history kept, then the request.
        grounding: The passages shown; :meth:`Grounding.citations` reads the answer's.
        history: Which turns were kept and trimmed.
        answer_tokens: The generated-token cap to send with the prompt.
        tokens: Estimated tokens of ``messages``; with ``answer_tokens`` within the window.
        question: What the material was ranked against (the answering passages are those
            that support it).
    """

    messages: list[ChatMessage]
    grounding: Grounding
    history: HistoryWindow
    answer_tokens: int
    tokens: int
    question: str = ""


def tutor_prompt(
    *,
    instructions: str,
    request_lines: Sequence[str],
    ask: str,
    question: str,
    context: str = "",
    material: Sequence[Passage] = (),
    history: Sequence[ChatTurn] = (),
    max_turns: int | None = None,
    answer_tokens: int,
    policy: TutorPolicy = DEFAULT_POLICY,
) -> TutorPrompt:
    """A prompt of instructions, history and one request, all within the window.

    Args:
        instructions: The system message's instructions (material rules are added when
            material is shown).
        request_lines: Fixed lines of the request (``Topic: ...``).
        ask: The last line of the request: what to write.
        question: What the material is ranked against.
        context: The student's context text, clipped to its share.
        material: Candidate passages (stored material and attached text).
        history: The chat so far, oldest first.
        max_turns: Most chat turns kept.
        answer_tokens: The answer's generated-token cap.
        policy: The window and its shares.

    Returns:
        The prompt.

    Raises:
        ContextTooSmallError: The window cannot hold the instructions and the answer.
    """
    system = f"{instructions} {MATERIAL_RULES}" if material else instructions
    lines = [neutralise(line) for line in request_lines]
    fixed = (
        estimate_tokens(system)
        + estimate_tokens("\n".join([*lines, ask, "Context: "]))
        + 2 * message_tokens({"role": "system", "content": ""})
    )
    budget = split_budget(fixed, answer_tokens, policy)
    context_text = clip_to_tokens(neutralise(context).strip(), budget.context_tokens)
    # Neutralised before ranking, so the tokens counted are the tokens shown.
    safe = [p.model_copy(update={"text": neutralise(p.text)}) for p in material]
    grounding = choose_material(
        question,
        [p for p in safe if p.text.strip()],
        budget_tokens=max(budget.material_tokens - FENCE_TOKENS, 0),
        max_passages=policy.max_passages,
    )
    material_used = estimate_tokens(grounding.fenced())
    window = fit_history(
        history, budget.history_after(material_used + FENCE_TOKENS), max_turns=max_turns
    )
    if window.summary:
        system = f"{system}\n{window.summary}"
    body = [*lines]
    if context_text:
        body.append(f"Context: {context_text}")
    if grounding.passages:
        body.append(grounding.fenced())
    elif material:
        body.append("None of the student's material matches this topic; do not cite pages.")
    body.append(ask)
    messages: list[ChatMessage] = [
        {"role": "system", "content": system},
        *window.messages,
        {"role": "user", "content": "\n".join(body)},
    ]
    return TutorPrompt(
        messages=messages,
        grounding=grounding,
        history=window,
        answer_tokens=answer_tokens,
        tokens=sum(message_tokens(m) for m in messages),
        question=question,
    )


def request_material(request: ExplainRequest, stored: Sequence[Passage]) -> list[Passage]:
    """The candidate passages of a request: its stored material, then its attached text.

    Args:
        request: The explain or stream request.
        stored: Passages of the stored material ``request.material_ids`` names (the handler
            loads them, for this user only).

    Returns:
        The passages.
    """
    attached = attached_passages(request.attached_context or "")
    return [*stored, *attached]


def _question(topic: str, context: str) -> str:
    return f"{topic} {context}"


# --- Structured explanation ---------------------------------------------------------------


class ExplanationAnswer(BaseModel):
    """An explanation; its keys come from :func:`explanation_schema`."""

    model_config = ANSWER_CONFIG


def explanation_schema(steps: int) -> type[ExplanationAnswer]:
    """The answer schema: ``intuition``, ``t1``/``s1`` .. ``tN``/``sN`` (each step's title
    and content, in writing order), ``analogy``, ``example``, ``pitfall``, ``question``.

    Args:
        steps: Steps asked for.

    Returns:
        The schema.
    """
    fields: dict[str, Any] = {"intuition": (str, ...)}
    for number in range(1, steps + 1):
        fields[f"t{number}"] = (str, ...)
        fields[f"s{number}"] = (str, ...)
    for name in ("analogy", "example", "pitfall", "question"):
        fields[name] = (str, ...)
    return create_model("Explanation", __base__=ExplanationAnswer, **fields)


def explanation_prompt(
    request: ExplainRequest,
    stored: Sequence[Passage] = (),
    policy: TutorPolicy = DEFAULT_POLICY,
) -> TutorPrompt:
    """The prompt of ``/api/tutor/explain`` (a structured explanation).

    Args:
        request: The request.
        stored: Passages of the stored material it names.
        policy: Window, shares and the steps by difficulty.

    Returns:
        The prompt; ask with :func:`explanation_schema` of ``policy.steps_for(difficulty)``.
    """
    steps = policy.steps_for(request.difficulty)
    return tutor_prompt(
        instructions=(
            f"{_TUTOR} {depth_instruction(request.difficulty)} intuition: the idea in one "
            f"line. t1..t{steps}: short step titles; s1..s{steps}: each step in 1 to 3 "
            "sentences. analogy: one comparison for the hardest step. example: a real-world "
            f"example. pitfall: a common mistake. question: one practice question. {JSON_ONLY}"
        ),
        request_lines=[f"Topic: {request.topic}", f"Depth: {request.difficulty}"],
        ask=f"Explain {neutralise(request.topic)} in {steps} steps.",
        question=_question(request.topic, request.context),
        context=request.context,
        material=request_material(request, stored),
        history=request.history,
        max_turns=policy.explain_history_turns,
        answer_tokens=policy.explanation_tokens,
        policy=policy,
    )


def explanation_draft(answer: ExplanationAnswer) -> dict[str, object]:
    """The answer in the original's shape, for the domain's repair.

    Args:
        answer: The model's answer.

    Returns:
        ``intuition``, ``steps`` [{``step_number``, ``title``, ``content``, ``analogy``}],
        ``real_world_example``, ``common_pitfall``, ``practice_question``.
    """
    raw = answer.model_dump()
    return {
        "intuition": raw.get("intuition"),
        "steps": _draft_steps(raw),
        "real_world_example": raw.get("example"),
        "common_pitfall": raw.get("pitfall"),
        "practice_question": raw.get("question"),
    }


def _draft_steps(raw: Mapping[str, object]) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []
    number = 1
    while f"s{number}" in raw:
        steps.append(
            {
                "step_number": number,
                "title": raw.get(f"t{number}", ""),
                "content": raw[f"s{number}"],
                # One analogy is asked for; it goes with the first step, as the original's
                # examples do.
                "analogy": raw.get("analogy") if number == 1 else None,
            }
        )
        number += 1
    return steps


_TITLE_KEY = re.compile(r"t\d+")


def answer_fields(answer: ExplanationAnswer) -> dict[str, str]:
    """The text fields of an answer, by key, in writing order."""
    return {key: value for key, value in answer.model_dump().items() if isinstance(value, str)}


def check_explanation(answer: ExplanationAnswer, prompt: str = "") -> None:
    """Sends an answer back for repair when it is degenerate or most of its steps unusable.

    Degenerate: one sentence in several fields (:func:`near_copies`), or a field that loops
    or copies the prompt at length (:func:`find_degeneration`). Such an answer is never
    delivered: the repair round samples more freely, and when every round fails the
    explanation is built from the student's material.

    Args:
        answer: The model's answer.
        prompt: The prompt's text, for the echo check.

    Raises:
        ValueError: What is wrong, in words the model can act on.
    """
    fields = answer_fields(answer)
    # Titles are left out of the comparison: a short title may well restate its step.
    copies = near_copies({k: v for k, v in fields.items() if not _TITLE_KEY.fullmatch(k)})
    if copies:
        names = ", ".join(f"{a} and {b}" for a, b in copies[:4])
        raise ValueError(f"{names} say the same thing: write each field about its own point")
    for key, value in fields.items():
        found = find_degeneration(value, prompt=prompt, markers=SCAFFOLDING)
        if found is not None:
            what = "copies the material" if found.kind == "prompt_echo" else "repeats itself"
            raise ValueError(f"{key} {what}: write it in your own words, once")
    steps = _draft_steps(answer.model_dump())
    problems: list[str] = []
    usable = 0
    for step in steps:
        if usable_text(step["content"], 10_000) is None:
            problems.append(f"s{step['step_number']}: write the step in plain sentences")
        else:
            usable += 1
    check_mostly_usable(problems, usable, len(steps))


def explanation_fields(explanation: TutorExplanation) -> dict[str, str]:
    """The texts of a delivered explanation by field (step titles left out)."""
    fields = {"intuition": explanation.intuition}
    for step in explanation.steps:
        fields[f"steps[{step.step_number - 1}].content"] = step.content
        if step.analogy:
            fields[f"steps[{step.step_number - 1}].analogy"] = step.analogy
    fields["real_world_example"] = explanation.real_world_example
    fields["common_pitfall"] = explanation.common_pitfall
    fields["practice_question"] = explanation.practice_question or ""
    return fields


def read_explanation(
    answer: ExplanationAnswer | None, *, topic: str, prompt: TutorPrompt
) -> RepairedExplanation:
    """The explanation to return: the model's, repaired, or ours where it could not be used.

    Args:
        answer: The model's answer, or None (model down, output invalid).
        topic: The request's topic.
        prompt: The prompt it answered (its passages back the steps of our own).

    Returns:
        The explanation and the repaired parts.
    """
    draft = explanation_draft(answer) if answer is not None else None
    return repair_explanation(draft, topic=topic, passages=prompt.grounding.passages)


# --- Streamed markdown explanation and lesson ----------------------------------------------


def stream_prompt(
    request: ExplainRequest,
    stored: Sequence[Passage] = (),
    policy: TutorPolicy = DEFAULT_POLICY,
) -> TutorPrompt:
    """The prompt of ``/api/tutor/stream``: a markdown explanation, streamed as written.

    Args:
        request: The request.
        stored: Passages of the stored material it names.
        policy: Window and shares.

    Returns:
        The prompt; stream it with ``max_tokens=prompt.answer_tokens``.
    """
    return tutor_prompt(
        instructions=_markdown_instructions(request.difficulty),
        request_lines=[f"Topic: {request.topic}"],
        ask=f"Explain {neutralise(request.topic)}.",
        question=_question(request.topic, request.context),
        context=request.context,
        material=request_material(request, stored),
        history=request.history,
        max_turns=policy.stream_history_turns,
        answer_tokens=policy.stream_tokens,
        policy=policy,
    )


def _markdown_instructions(difficulty: Difficulty) -> str:
    return (
        f"{_TUTOR} {depth_instruction(difficulty)} Write markdown: the idea in one line, "
        "then numbered steps, a real-world example, a common pitfall and one practice "
        "question. Say each thing once."
    )


def lesson_prompt(
    request: LessonRequest,
    stored: Sequence[Passage] = (),
    policy: TutorPolicy = DEFAULT_POLICY,
) -> TutorPrompt:
    """The prompt of the ``tutor.lesson`` command: a short markdown lesson.

    Args:
        request: Topic, focus and length.
        stored: Passages of the stored material it names.
        policy: Window, shares and tokens per word.

    Returns:
        The prompt.
    """
    focus = f"Focus: {request.focus}" if request.focus.strip() else "Focus: the essentials"
    return tutor_prompt(
        instructions=(
            f"{_TUTOR} Write a short markdown lesson of about {request.target_words} words: "
            "a heading, the key idea, one worked example and a two-line recap. Say each "
            "thing once."
        ),
        request_lines=[f"Topic: {request.topic}", focus],
        ask=f"Write the lesson on {neutralise(request.topic)}.",
        question=_question(request.topic, request.focus),
        material=stored,
        answer_tokens=policy.lesson_tokens(request.target_words),
        policy=policy,
    )


def read_lesson(markdown: str, prompt: TutorPrompt, *, source: AnswerSource = "model") -> Lesson:
    """The lesson as the command returns it: the markdown and the pages it draws on.

    Args:
        markdown: The checked text, as streamed.
        prompt: The prompt it answered.
        source: ``model``, or ``extract`` for quoted material.

    Returns:
        The lesson (the markdown is what the student already saw, so it is not rewritten);
        its citations computed by overlap (:func:`attribute`), not read from markers.
    """
    return Lesson(
        markdown=markdown,
        citations=attribute(markdown, prompt.grounding.passages),
        source=source,
    )


# --- Images --------------------------------------------------------------------------------


class VisualReferenceAnswer(BaseModel):
    """One part of the image the explanation points at."""

    model_config = ANSWER_CONFIG

    label: str
    region: str
    description: str


class StepAnswer(BaseModel):
    """One step of a deep dive."""

    model_config = ANSWER_CONFIG

    title: str
    content: str


class ImageExplanationAnswer(BaseModel):
    """An image explanation in the original's field names."""

    model_config = ANSWER_CONFIG

    intuition: str
    visual_references: list[VisualReferenceAnswer] = Field(max_length=MAX_VISUAL_REFERENCES)
    explanation: str
    deep_dive: list[StepAnswer] = Field(max_length=MAX_DEEP_DIVE_STEPS)
    practice_question: str


class DescriptionAnswer(BaseModel):
    """A description of an image, to use as study material."""

    model_config = ANSWER_CONFIG

    description: str


VisionPrompt = list[ChatMessage | VisionMessage]
"""A system message, then a user message with text and image parts."""


def image_explanation_messages(topic: str, image_base64: str, mime_type: str) -> VisionPrompt:
    """The prompt of ``/api/tutor/explain-image``.

    Args:
        topic: What the student is studying.
        image_base64: The image (validated by the request contract).
        mime_type: Its type.

    Returns:
        The messages, the image sent as OpenAI image input.
    """
    return [
        {
            "role": "system",
            "content": f"{_TUTOR} Explain a study image. visual_references: the parts of "
            "the image you explain, where they are and what they show. Describe only what "
            f"is in the image; if you cannot make it out, say so. {JSON_ONLY}",
        },
        image_message(f"Topic: {neutralise(topic)}\nExplain this image.", image_base64, mime_type),
    ]


def read_image_explanation(
    answer: ImageExplanationAnswer | None, *, topic: str
) -> RepairedImageExplanation:
    """The image explanation to return: the model's, repaired, or honest text of our own.

    Args:
        answer: The model's answer, or None.
        topic: The request's topic.

    Returns:
        The explanation and the repaired parts.
    """
    draft: Mapping[str, object] | None = None
    if answer is not None:
        raw = answer.model_dump()
        raw["deep_dive"] = [
            {"step_number": i, **step} for i, step in enumerate(raw["deep_dive"], start=1)
        ]
        draft = raw
    return repair_image_explanation(draft, topic=topic)


def describe_image_messages(image_base64: str, mime_type: str) -> VisionPrompt:
    """The prompt of ``/api/describe-image``.

    Args:
        image_base64: The image (validated by the request contract).
        mime_type: Its type.

    Returns:
        The messages, the image sent as OpenAI image input.
    """
    return [
        {
            "role": "system",
            "content": "Describe a study image so a student can study from the text alone: "
            "transcribe its text, formulas and labels, and describe diagrams and graphs "
            f"precisely. Describe only what is in the image. {JSON_ONLY}",
        },
        image_message("Describe this image.", image_base64, mime_type),
    ]


def screen_description(answer: DescriptionAnswer) -> str:
    """The description, if it is usable, within the original's 8,000 characters.

    Args:
        answer: The model's answer.

    Returns:
        The description (line breaks kept, each line tidied).

    Raises:
        ValueError: Empty or looping text, in words the model can act on.
    """
    lines = [" ".join(line.split()) for line in answer.description.splitlines()]
    text = "\n".join(line for line in lines if line).strip()
    if not words(text):
        raise ValueError("description: describe what the image shows, in words")
    if is_degenerate(text):
        raise ValueError("description: it repeats itself; say each thing once")
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 1].rstrip() + "\u2026"
    return text
