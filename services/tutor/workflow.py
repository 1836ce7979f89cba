"""The tutor's model calls: prompts in, answers out. Touches neither the database nor Kafka.

- :meth:`TutorWorkflow.explain`: a structured explanation, screened and repaired; a model
  that fails or answers badly leaves text of our own, never an error.
- :meth:`TutorWorkflow.stream_markdown`: a markdown answer streamed delta by delta to an
  ``emit`` callback as the model writes it, stopped as soon as ``stopped`` completes (the
  client went away): the model stream is closed, so the server stops generating.
- :meth:`TutorWorkflow.explain_image` and :meth:`TutorWorkflow.describe_image`: OpenAI image
  input, refused up front when the configured model cannot see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from exammentor.contracts.tutor import (
    Citation,
    DescribeImageRequest,
    ExplainRequest,
    GroundedExplanation,
    ImageExplainRequest,
    MultimodalExplanation,
    StreamError,
)
from exammentor.llm import LLMClient, LLMError, LLMInvalidOutput, Message
from exammentor.logs import get_logger
from exammentor.model_answers import ModelRun
from services.tutor.domain import (
    Passage,
    TutorPolicy,
    VisionUnsupportedError,
)
from services.tutor.prompts import (
    DESCRIPTION_MAX_TOKENS,
    IMAGE_EXPLANATION_MAX_TOKENS,
    DescriptionAnswer,
    ImageExplanationAnswer,
    TutorPrompt,
    VisionPrompt,
    check_explanation,
    describe_image_messages,
    explanation_prompt,
    explanation_schema,
    image_explanation_messages,
    read_explanation,
    read_image_explanation,
    screen_description,
)

log = get_logger(__name__)


class ModelFailed(Exception):
    """The model could not give an answer we may show (down, or unusable output)."""


@dataclass(frozen=True)
class Streamed:
    """What a streamed answer came to.

    Attributes:
        markdown: The text as streamed (partial when ``partial``).
        deltas: Deltas received (about one token each on llama.cpp and OpenAI).
        partial: Generation stopped early: the client went away, or the model failed.
        error: Why the model failed, when it did.
        latency_ms: From the call to the last delta.
        first_delta_ms: From the call to the first delta (None without one).
    """

    markdown: str
    deltas: int
    partial: bool
    error: StreamError | None
    latency_ms: float
    first_delta_ms: float | None


@dataclass(frozen=True)
class Explained:
    """A structured explanation, its citations and cost."""

    explanation: GroundedExplanation
    repairs: tuple[str, ...]
    model_status: str
    latency_ms: float


def _sendable(messages: VisionPrompt) -> list[Message]:
    # The domain's VisionMessage and the kit's PartsMessage are the same OpenAI shape,
    # declared twice so the domain does not depend on the client; only the types differ.
    return cast(list[Message], list(messages))


def _screen_description(answer: DescriptionAnswer) -> None:
    screen_description(answer)  # raises ValueError for the model to repair


def _answer_text(explanation: GroundedExplanation) -> str:
    parts = [explanation.intuition, explanation.real_world_example, explanation.common_pitfall]
    for step in explanation.steps:
        parts += [step.title, step.content, step.analogy or ""]
    return "\n".join(parts)


class TutorWorkflow:
    """The tutor's model calls, for one service process."""

    def __init__(self, llm: LLMClient, policy: TutorPolicy, *, vision: bool, model: str) -> None:
        self.llm = llm
        self.policy = policy
        self.vision = vision
        self.model = model

    async def explain(self, request: ExplainRequest, stored: list[Passage]) -> Explained:
        """A structured explanation; the model's, repaired, or ours where it failed.

        Raises:
            ContextTooSmallError: The window cannot hold the prompt and the answer.
        """
        started = time.perf_counter()
        prompt = explanation_prompt(request, stored, self.policy)
        run = ModelRun(self.llm)
        schema = explanation_schema(self.policy.steps_for(request.difficulty))
        answer = await run.ask(
            "tutor.explain",
            prompt.messages,
            schema,
            max_tokens=prompt.answer_tokens,
            validate=check_explanation,
        )
        repaired = read_explanation(answer, topic=request.topic, prompt=prompt)
        grounded = GroundedExplanation.model_validate(repaired.explanation.model_dump())
        grounded.citations = prompt.grounding.citations(_answer_text(grounded))
        return Explained(
            explanation=grounded,
            repairs=repaired.repairs,
            model_status=run.status.get("tutor.explain", "off"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def stream_markdown(
        self,
        prompt: TutorPrompt,
        *,
        purpose: str,
        emit: Callable[[str], Awaitable[None]],
        stopped: Callable[[], Awaitable[None]],
    ) -> Streamed:
        """Streams the model's markdown to ``emit`` as it comes, until done or stopped.

        Args:
            prompt: The prompt (its ``answer_tokens`` caps the answer).
            purpose: The call's name for usage records.
            emit: Called with each delta, in order, before the next is read.
            stopped: Completes when no one reads any more; generation then stops.

        Returns:
            The text so far and how it ended; a model failure is reported, not raised.
        """
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        partial = False
        error: StreamError | None = None
        tokens = self.llm.stream_text(
            messages=prompt.messages, purpose=purpose, max_tokens=prompt.answer_tokens
        )
        stop = asyncio.ensure_future(stopped())
        try:
            while True:
                following = asyncio.ensure_future(anext(tokens))
                await asyncio.wait({following, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    # The reader left: cancelling the read closes the model's HTTP stream
                    # inside stream_text, so the server stops generating at once.
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await following
                    partial = True
                    log.info("stream stopped: no one reads", purpose=purpose, deltas=len(parts))
                    break
                try:
                    delta = following.result()
                except StopAsyncIteration:
                    break
                except LLMError as exc:
                    partial = True
                    error = StreamError(code="model_failed", message=exc.reason)
                    break
                if first is None:
                    first = time.perf_counter()
                parts.append(delta)
                await emit(delta)
        finally:
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop
            await tokens.aclose()
        return Streamed(
            markdown="".join(parts),
            deltas=len(parts),
            partial=partial,
            error=error,
            latency_ms=(time.perf_counter() - started) * 1000,
            first_delta_ms=None if first is None else (first - started) * 1000,
        )

    def _check_vision(self) -> None:
        if not self.vision:
            raise VisionUnsupportedError(self.model)

    async def _ask_image(
        self, purpose: str, messages: VisionPrompt, schema: type[ImageExplanationAnswer]
    ) -> ImageExplanationAnswer | None:
        try:
            return await self.llm.structured(
                messages=_sendable(messages),
                schema=schema,
                purpose=purpose,
                max_tokens=IMAGE_EXPLANATION_MAX_TOKENS,
            )
        except LLMInvalidOutput:
            return None

    async def explain_image(self, request: ImageExplainRequest) -> MultimodalExplanation:
        """An explanation of an image, repaired where the model's answer is off.

        Raises:
            VisionUnsupportedError: The configured model cannot see.
            ModelFailed: The model server failed on every retry.
        """
        self._check_vision()
        messages = image_explanation_messages(
            request.topic, request.image_base64, request.mime_type
        )
        try:
            answer = await self._ask_image("tutor.explain_image", messages, ImageExplanationAnswer)
        except LLMError as exc:
            raise ModelFailed(exc.reason) from exc
        return read_image_explanation(answer, topic=request.topic).explanation

    async def describe_image(self, request: DescribeImageRequest) -> str:
        """A description of an image to study from; never one of our own invention.

        Raises:
            VisionUnsupportedError: The configured model cannot see.
            ModelFailed: The model failed or its description was unusable.
        """
        self._check_vision()
        sendable = _sendable(describe_image_messages(request.image_base64, request.mime_type))
        try:
            answer = await self.llm.structured(
                messages=sendable,
                schema=DescriptionAnswer,
                purpose="tutor.describe_image",
                max_tokens=DESCRIPTION_MAX_TOKENS,
                validate=_screen_description,
            )
        except LLMError as exc:
            raise ModelFailed(exc.reason) from exc
        return screen_description(answer)


def cited(citations: list[Citation]) -> list[int]:
    """The distinct pages of ``citations``, in order."""
    pages: list[int] = []
    for citation in citations:
        if citation.page not in pages:
            pages.append(citation.page)
    return pages
