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
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from exammentor.contracts.tutor import (
    ANSWER_UNUSABLE,
    AnswerSource,
    Citation,
    DescribeImageRequest,
    ExplainRequest,
    GroundedExplanation,
    ImageExplainRequest,
    MultimodalExplanation,
    StreamError,
)
from exammentor.llm.answers import ModelRun
from exammentor.llm.client import LLMClient
from exammentor.llm.degenerate_text import (
    DEFAULT_LOOP_POLICY,
    LoopWatch,
    clean_prefix,
    near_copies,
    word_count,
)
from exammentor.llm.messages import ChatMessage, LLMError, LLMInvalidOutput, Message
from exammentor.llm.sampling import GREEDY
from exammentor.logs import get_logger
from services.tutor.domain import (
    DEFAULT_STREAM_CHECKS,
    RETRY_RULE,
    SCAFFOLDING,
    Passage,
    StreamChecks,
    TutorPolicy,
    VisionUnsupportedError,
    answering_passages,
    attribute,
    distinct_fields,
    final_answer,
    with_support,
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
    explanation_fields,
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
    source: Literal["model", "extract"] = "model"
    degenerate: tuple[str, ...] = ()


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
    return "\n".join(explanation_fields(explanation).values())


@dataclass(frozen=True)
class _End:
    """How one round ended: ``clean``, ``looped``, ``stopped`` (no reader) or ``failed``."""

    kind: Literal["clean", "looped", "stopped", "failed"]
    text: str
    reason: str = ""
    error: StreamError | None = None


@dataclass(frozen=True)
class _Round:
    end: _End
    deltas: int
    first_delta: float | None


class _View:
    """What the client was shown, so a later text is sent as its continuation or after a
    reset."""

    def __init__(
        self, emit: Callable[[str], Awaitable[None]], reset: Callable[[str], Awaitable[None]]
    ) -> None:
        self._emit = emit
        self._reset = reset
        self.shown = ""
        self.reason = "retry"
        """What the last round that failed the check found: the reason of a reset."""

    async def show(self, text: str) -> None:
        if not text.startswith(self.shown):
            await self._reset(self.reason)
            self.shown = ""
        if len(text) > len(self.shown):
            await self._emit(text[len(self.shown) :])
            self.shown = text


def echo_source(prompt: TutorPrompt) -> str:
    """What an answer must not copy at length: the instructions (the system message).

    The student's material is left out: quoting a sentence of it word for word, with its
    page, is what a good tutor does (a capable model fails the check otherwise, and its
    repair round answers worse); an answer that dumps the material is caught by the fence
    markers (:data:`SCAFFOLDING`) and, field by field, by the near-copy check. The request's
    own lines are left out too: a lesson's focus quotes the previous lesson's opening ("go
    beyond the previous lesson, which began: ..."), and a lesson that starts the same way
    repeats a lesson; it does not echo the prompt.
    """
    return str(prompt.messages[0].get("content", ""))


def retry_messages(prompt: TutorPrompt) -> list[ChatMessage]:
    """The prompt of a retry round: :data:`RETRY_RULE` added to its system message."""
    messages = list(prompt.messages)
    system = messages[0]
    messages[0] = {"role": "system", "content": f"{system['content']} {RETRY_RULE}"}
    return messages


class TutorWorkflow:
    """The tutor's model calls, for one service process."""

    def __init__(self, llm: LLMClient, policy: TutorPolicy, *, vision: bool, model: str) -> None:
        self.llm = llm
        self.policy = policy
        self.vision = vision
        self.model = model

    async def explain(self, request: ExplainRequest, stored: list[Passage]) -> Explained:
        """A structured explanation: the model's, checked and repaired, or extracts.

        The model's answer is checked (:func:`check_explanation`: near-copied fields, loops,
        echoes of the prompt); the client's repair rounds sample more freely. When every
        round fails, the steps quote the passages that match the question (``source`` is
        ``extract``), or, without material, a study method of our own (``template``).
        What is delivered repeats no sentence, has no field copying another and draws on
        the page that answers the question (:func:`distinct_fields`). Citations are computed
        from the answer (:func:`attribute`), never read from it.

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
            validate=functools.partial(check_explanation, prompt=echo_source(prompt)),
        )
        repaired = read_explanation(answer, topic=request.topic, prompt=prompt)
        if answer is not None and near_copies(explanation_fields(repaired.explanation)):
            # Repair can put our own text beside the model's; a copy it leaves is not shown.
            repaired = read_explanation(None, topic=request.topic, prompt=prompt)
        source: AnswerSource = "model"
        if answer is None:
            source = "extract" if prompt.grounding.passages else "template"
        # Delivered: each sentence once, no field a copy of another, and the page that
        # answers the question quoted when no field draws on it.
        delivered, fixes = distinct_fields(
            repaired.explanation, question=prompt.question, passages=prompt.grounding.passages
        )
        grounded = GroundedExplanation.model_validate({**delivered.model_dump(), "source": source})
        grounded.citations = attribute(
            _answer_text(grounded), prompt.grounding.passages, question=prompt.question
        )
        return Explained(
            explanation=grounded,
            repairs=(*repaired.repairs, *fixes),
            model_status=run.status.get("tutor.explain", "off"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def stream_markdown(
        self,
        prompt: TutorPrompt,
        *,
        purpose: str,
        emit: Callable[[str], Awaitable[None]],
        reset: Callable[[str], Awaitable[None]],
        stopped: Callable[[], Awaitable[None]],
        matching: Sequence[Passage] = (),
        checks: StreamChecks = DEFAULT_STREAM_CHECKS,
    ) -> Streamed:
        """Streams checked markdown to ``emit``, round by round, until clean or stopped.

        Each round's text is judged as it comes (:class:`LoopWatch`) and relayed
        ``checks.hold_words`` behind; a round that loops or echoes the prompt is closed at
        once. Its clean part is kept when long enough, else the next round samples more
        freely (:meth:`Sampling.for_round`) with :data:`RETRY_RULE` added. When no round
        gives enough, the passages of ``matching`` that answer the question are quoted as
        extracts (:func:`final_answer`). A model answer that draws on none of the prompt's
        passages that answer the question is delivered with them quoted after it
        (:func:`with_support`), so it cites the page that answers.

        Args:
            prompt: The prompt (its ``answer_tokens`` caps each round).
            purpose: The call's name for usage records.
            emit: Called with each relayed piece of text, in order.
            reset: Called with the reason when the text relayed so far is not part of the
                answer; pieces after it start the answer again.
            stopped: Completes when no one reads any more; generation then stops.
            matching: The request's passages that match the question, for extracts.
            checks: Hold-back and keep thresholds.

        Returns:
            The answer and how it ended; a model failure is reported, not raised.
        """
        started = time.perf_counter()
        view = _View(emit, reset)
        parts: list[str] = []
        found: list[str] = []
        deltas = 0
        first: float | None = None
        rounds = self.llm.settings.repair_attempts + 1
        stop = asyncio.ensure_future(stopped())
        try:
            for round_no in range(1, rounds + 1):
                attempt = await self._round(
                    prompt, round_no, purpose=purpose, view=view, stop=stop, checks=checks
                )
                deltas += attempt.deltas
                first = first if first is not None else attempt.first_delta
                end = attempt.end
                if end.kind == "failed" and found:
                    # The server failed on a retry: what the earlier rounds left decides.
                    parts.append(end.text)
                    break
                if end.kind in ("clean", "stopped", "failed"):
                    text = end.text
                    if end.kind == "clean":
                        text = with_support(text, prompt.question, prompt.grounding.passages)
                    if end.kind != "stopped":  # no one reads a stopped stream
                        await view.show(text)
                    return self._streamed(
                        text,
                        source="model",
                        deltas=deltas,
                        partial=end.kind != "clean",
                        error=end.error,
                        found=found,
                        started=started,
                        first=first,
                    )
                found.append(end.reason)
                parts.append(end.text)
                view.reason = end.reason
                if word_count(end.text) >= checks.keep_words:
                    text = with_support(end.text, prompt.question, prompt.grounding.passages)
                    await view.show(text)
                    return self._streamed(
                        text,
                        source="model",
                        deltas=deltas,
                        partial=False,
                        error=None,
                        found=found,
                        started=started,
                        first=first,
                    )
                log.info(
                    "stream round looped; retrying",
                    purpose=purpose,
                    round=round_no,
                    of=rounds,
                    kind=end.reason,
                    kept_words=word_count(end.text),
                )
        finally:
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop
        final = final_answer(
            parts, answering_passages(prompt.question, matching) or matching, checks
        )
        await view.show(final.markdown)
        if final.source == "unusable":
            error = StreamError(
                code=ANSWER_UNUSABLE.code,
                message=f"every model round failed the quality check ({', '.join(found)}) and "
                "no material of the request matches the topic",
            )
            return self._streamed(
                "",
                source="model",
                deltas=deltas,
                partial=False,
                error=error,
                found=found,
                started=started,
                first=first,
            )
        return self._streamed(
            final.markdown,
            source=final.source,
            deltas=deltas,
            partial=False,
            error=None,
            found=found,
            started=started,
            first=first,
        )

    def _streamed(
        self,
        markdown: str,
        *,
        source: Literal["model", "extract"],
        deltas: int,
        partial: bool,
        error: StreamError | None,
        found: list[str],
        started: float,
        first: float | None,
    ) -> Streamed:
        return Streamed(
            markdown=markdown,
            deltas=deltas,
            partial=partial,
            error=error,
            latency_ms=(time.perf_counter() - started) * 1000,
            first_delta_ms=None if first is None else (first - started) * 1000,
            source=source,
            degenerate=tuple(found),
        )

    async def _round(
        self,
        prompt: TutorPrompt,
        round_no: int,
        *,
        purpose: str,
        view: _View,
        stop: asyncio.Future[Any],
        checks: StreamChecks,
    ) -> _Round:
        """One model call, judged as it streams; closed at the first loop or when stopped."""
        messages = prompt.messages if round_no == 1 else retry_messages(prompt)
        watch = LoopWatch(
            prompt=echo_source(prompt), markers=SCAFFOLDING, policy=DEFAULT_LOOP_POLICY
        )
        # The deltas of one read come together: each is judged, and what the hold-back
        # releases is relayed once per read, not once per token (under load, reads bring
        # several deltas, and per-token relaying was the tutor's CPU).
        parts = self.llm.stream_parts(
            messages=messages,
            purpose=purpose,
            max_tokens=prompt.answer_tokens,
            sampling=GREEDY.for_round(round_no),
        )
        deltas = 0
        first: float | None = None
        shown = 0
        end: _End | None = None
        # The reader leaving interrupts a read in this task itself (not a task per read and
        # an asyncio.wait on it and `stop`: that cost as much as the rest of a read); a relay
        # write under way is never interrupted, `stop` is checked after it.
        task = asyncio.current_task()
        assert task is not None
        reading = False

        def interrupt(_: object) -> None:
            if reading:
                task.cancel()

        stop.add_done_callback(interrupt)
        try:
            while end is None:
                if stop.done():
                    end = self._stopped(watch, purpose, deltas)
                    break
                reading = True
                try:
                    part = await anext(parts)
                except asyncio.CancelledError:
                    # Ours only when `stop` fired; a cancel from outside (a shutdown) goes on.
                    if not stop.done() or task.uncancel() > 0:
                        raise
                    # The cancelled read closed the model's HTTP stream inside
                    # stream_parts, so the server stops generating at once.
                    end = self._stopped(watch, purpose, deltas)
                    break
                except StopAsyncIteration:
                    loop = watch.finish()
                    end = (
                        _End("clean", watch.text)
                        if loop is None
                        else _End("looped", clean_prefix(watch.text, loop), loop.kind)
                    )
                    break
                except LLMError as exc:
                    error = StreamError(code="model_failed", message=exc.reason)
                    end = _End("failed", watch.text, "model_failed", error)
                    break
                finally:
                    reading = False
                first = first if first is not None else time.perf_counter()
                for delta in part:
                    deltas += 1
                    loop = watch.feed(delta)
                    if loop is not None:
                        # Closing the stream below stops the server: a loop runs to the
                        # token cap otherwise, seconds of a shared CPU for text no one sees.
                        end = _End("looped", clean_prefix(watch.text, loop), loop.kind)
                        log.info("stream round looped", purpose=purpose, kind=loop.kind)
                        break
                if end is not None:
                    break
                upto = checks.relay_end(watch, shown)
                if upto > shown:
                    await view.show(watch.text[:upto])
                    shown = upto
        finally:
            stop.remove_done_callback(interrupt)
            await parts.aclose()
        return _Round(end, deltas, first)

    @staticmethod
    def _stopped(watch: LoopWatch, purpose: str, deltas: int) -> _End:
        log.info("stream stopped: no one reads", purpose=purpose, deltas=deltas)
        return _End("stopped", watch.text, "stopped")

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
