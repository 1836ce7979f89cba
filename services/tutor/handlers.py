"""Commands the tutor service handles (``tutor.*`` v1, declared in
:mod:`exammentor.contracts.tutor`).

Thin, like the planner's: load what the command names for its user (stored material, the
chat of a topic), call :class:`~services.tutor.workflow.TutorWorkflow` (the model calls),
then return the result with a persist step and the ``tutor.explained`` event.

Streaming: ``tutor.stream`` and ``tutor.lesson`` send each model delta as a progress chunk
``{"type": "token", "text": ...}`` the moment it arrives, without storing it (the final
text is stored once, with the result). When the gateway says no one reads any more, the
model stream is closed and the answer is stored as far as it got, marked partial.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import TutorExplainedV1
from exammentor.contracts.tutor import (
    ANSWER_UNUSABLE,
    MATERIAL_NOT_FOUND,
    MATERIAL_UNKNOWN,
    MODEL_FAILED,
    PROMPT_TOO_LARGE,
    TUTOR_CHAT_SAVE,
    TUTOR_DESCRIBE_IMAGE,
    TUTOR_EXPLAIN,
    TUTOR_EXPLAIN_IMAGE,
    TUTOR_EXTRACT_PDF_TEXT,
    TUTOR_LESSON,
    TUTOR_MATERIAL_ADD,
    TUTOR_MATERIAL_DELETE,
    TUTOR_STREAM,
    ChatSaved,
    ChatSaveRequest,
    ChatTurn,
    Citation,
    DescribeImageRequest,
    ExplainRequest,
    GroundedExplanation,
    ImageDescription,
    ImageExplainRequest,
    Lesson,
    LessonRequest,
    Material,
    MaterialAddRequest,
    MaterialDeleted,
    MaterialDeleteRequest,
    MultimodalExplanation,
    PdfText,
    PdfTextRequest,
    StreamResult,
    StreamUsage,
)
from exammentor.db import Connection
from exammentor.llm.messages import estimate_tokens
from exammentor.messaging.handling import (
    CommandContext,
    CommandRejected,
    CommandRouter,
    Outcome,
    Persist,
)
from exammentor.worker import WorkerResources
from services.tutor import repo
from services.tutor.domain import (
    DEFAULT_STREAM_CHECKS,
    ContextTooSmallError,
    MaterialError,
    Passage,
    PdfTooManyPagesError,
    StreamChecks,
    TutorError,
    TutorPolicy,
    VisionUnsupportedError,
    attached_passages,
    attribute,
    extract_pdf_text,
    rank_passages,
    read_pdf_pages,
    split_passages,
    text_pages,
)
from services.tutor.prompts import TutorPrompt, lesson_prompt, read_lesson, stream_prompt
from services.tutor.settings import TutorSettings
from services.tutor.workflow import ModelFailed, Streamed, TutorWorkflow, cited

CONTEXT_EXTRACT_WORDS = 40
"""A request's ``context`` this long or longer is material enough to quote as an extract
when every model round failed (a shorter one is the student's question, not material)."""


def matching_passages(prompt: TutorPrompt, topic: str, context: str) -> list[Passage]:
    """The passages to quote when every model round failed: the prompt's material that
    matches the question, else the request's own context text where it matches."""
    if prompt.grounding.passages:
        return list(prompt.grounding.passages)
    if len(context.split()) < CONTEXT_EXTRACT_WORDS:
        return []
    return [ranked.passage for ranked in rank_passages(topic, attached_passages(context))]


def refusal(error: TutorError, field: str) -> CommandRejected:
    """A domain refusal as the command's error, naming the field and carrying the numbers."""
    if isinstance(error, ContextTooSmallError):
        return CommandRejected(
            PROMPT_TOO_LARGE.code,
            f"{field}: {error}",
            {
                "field": field,
                "needed_tokens": error.needed_tokens,
                "context_tokens": error.context_tokens,
            },
        )
    details: dict[str, object] = {"field": field}
    for name in ("pages", "limit", "size_bytes", "limit_bytes", "chars", "model"):
        if hasattr(error, name):
            details[name] = getattr(error, name)
    if isinstance(error, PdfTooManyPagesError):
        details["limit_pages"] = error.limit
    return CommandRejected(error.code, f"{field}: {error}", details)


async def stored_passages(ctx: CommandContext, material_ids: list[UUID]) -> list[Passage]:
    """The passages of the materials a request names; another user's is refused by field."""
    if not material_ids:
        return []
    async with ctx.transaction() as conn:
        found = await repo.material_passages(conn, material_ids)
    for index, material_id in enumerate(material_ids):
        if material_id not in found:
            raise CommandRejected(
                MATERIAL_UNKNOWN.code,
                f"material_ids[{index}]: no material {material_id} of yours",
                {"field": f"material_ids[{index}]", "material_id": str(material_id)},
            )
    return [p for material_id in dict.fromkeys(material_ids) for p in found[material_id]]


async def with_memory(ctx: CommandContext, request: ExplainRequest) -> ExplainRequest:
    """The request with the stored chat of its topic as history, when it sent none."""
    if request.topic_id is None or request.history:
        return request
    async with ctx.transaction() as conn:
        turns = await repo.chat_turns(conn, request.topic_id)
    return request.model_copy(update={"history": turns})


def explained_event(
    ctx: CommandContext,
    *,
    kind: str,
    topic: str,
    topic_id: str | None,
    usage: StreamUsage,
    pages: list[int],
    partial: bool,
) -> TutorExplainedV1:
    """The ``tutor.explained`` v1 payload."""
    return TutorExplainedV1.model_validate(
        {
            "kind": kind,
            "topic": topic,
            "topic_id": topic_id,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "latency_ms": usage.latency_ms,
            "cited_pages": pages,
            "partial": partial,
        }
    )


@dataclass(frozen=True)
class StoredAnswer:
    """One answer of the tutor as it is stored and announced (explain, stream or lesson)."""

    kind: str
    topic: str
    topic_id: str | None
    answer: dict[str, Any]
    citations: Sequence[Citation]
    partial: bool
    usage: StreamUsage


def answered(
    ctx: CommandContext, stored: StoredAnswer, then: Persist | None = None
) -> tuple[Persist, list[EventEnvelope]]:
    """The persist step that stores the answer (then runs ``then``), and ``tutor.explained``.

    Args:
        ctx: The command's context.
        stored: The answer.
        then: More to write in the same transaction (the chat of a topic).

    Returns:
        The persist step and the event.
    """
    answer_id = uuid4()

    async def persist(conn: Connection) -> None:
        await repo.insert_answer(
            conn,
            answer_id=answer_id,
            user_id=ctx.user_id,
            request_id=ctx.envelope.request_id,
            kind=stored.kind,
            topic=stored.topic,
            topic_id=stored.topic_id,
            answer=stored.answer,
            citations=stored.citations,
            partial=stored.partial,
            prompt_tokens=stored.usage.prompt_tokens,
            completion_tokens=stored.usage.completion_tokens,
            latency_ms=stored.usage.latency_ms,
        )
        if then is not None:
            await then(conn)

    event = explained_event(
        ctx,
        kind=stored.kind,
        topic=stored.topic,
        topic_id=stored.topic_id,
        usage=stored.usage,
        pages=cited(list(stored.citations)),
        partial=stored.partial,
    )
    return persist, [ctx.event(event)]


def _chat_turn(ctx: CommandContext, request: ExplainRequest, result: StreamResult) -> Persist:
    """Appends the question and a whole model answer to the topic's chat (a partial or
    computed answer, or one without a topic, is not remembered)."""
    topic_id = request.topic_id

    async def remember(conn: Connection) -> None:
        if topic_id is None or result.partial or not result.markdown or result.source != "model":
            return
        question = request.topic if not request.context else f"{request.topic}\n{request.context}"
        await repo.append_chat(
            conn,
            user_id=ctx.user_id,
            topic_id=topic_id,
            turns=[
                ChatTurn(role="user", content=question[:20_000]),
                ChatTurn(role="ai", content=result.markdown[:20_000]),
            ],
            first_explanation=result.markdown,
        )

    return remember


class TutorHandlers:
    """The tutor's command handlers over one workflow."""

    def __init__(self, workflow: TutorWorkflow, policy: TutorPolicy) -> None:
        self.workflow = workflow
        self.policy = policy

    # ---- explanations ------------------------------------------------------------------

    async def explain(
        self, ctx: CommandContext, request: ExplainRequest
    ) -> Outcome[GroundedExplanation]:
        """``tutor.explain`` v1: a structured explanation, repaired, never a model error."""
        stored = await stored_passages(ctx, request.material_ids)
        request = await with_memory(ctx, request)
        try:
            explained = await self.workflow.explain(request, stored)
        except ContextTooSmallError as exc:
            raise refusal(exc, "topic") from exc
        result = explained.explanation
        text = result.model_dump_json()
        usage = StreamUsage(
            prompt_tokens=0,
            completion_tokens=estimate_tokens(text),
            latency_ms=explained.latency_ms,
        )
        answer = {
            "explanation": result.model_dump(mode="json"),
            "repairs": list(explained.repairs),
            "model": explained.model_status,
        }
        persist, events = answered(
            ctx,
            StoredAnswer(
                "explain", request.topic, request.topic_id, answer, result.citations, False, usage
            ),
        )
        return Outcome(result=result, persist=persist, events=events)

    async def _stream(
        self,
        ctx: CommandContext,
        prompt: TutorPrompt,
        purpose: str,
        matching: Sequence[Passage],
        checks: StreamChecks = DEFAULT_STREAM_CHECKS,
    ) -> Streamed:
        async def emit(delta: str) -> None:
            # Tokens are relayed, not stored one by one: the final text is stored once.
            await ctx.progress({"type": "token", "text": delta}, store=False)

        async def reset(reason: str) -> None:
            await ctx.progress({"type": "reset", "reason": reason}, store=False)

        return await self.workflow.stream_markdown(
            prompt,
            purpose=purpose,
            emit=emit,
            reset=reset,
            stopped=ctx.wait_cancelled,
            matching=matching,
            checks=checks,
        )

    async def stream(self, ctx: CommandContext, request: ExplainRequest) -> Outcome[StreamResult]:
        """``tutor.stream`` v1: markdown streamed token by token; stored whole or partial."""
        stored = await stored_passages(ctx, request.material_ids)
        request = await with_memory(ctx, request)
        try:
            prompt = stream_prompt(request, stored, self.policy)
        except ContextTooSmallError as exc:
            raise refusal(exc, "topic") from exc
        streamed = await self._stream(
            ctx, prompt, "tutor.stream", matching_passages(prompt, request.topic, request.context)
        )
        citations = attribute(
            streamed.markdown, prompt.grounding.passages, question=prompt.question
        )
        usage = StreamUsage(
            prompt_tokens=prompt.tokens,
            completion_tokens=streamed.deltas,
            latency_ms=round(streamed.latency_ms, 3),
        )
        result = StreamResult(
            markdown=streamed.markdown,
            citations=citations,
            usage=usage,
            partial=streamed.partial,
            error=streamed.error,
            source=streamed.source,
        )
        answer = {
            "markdown": result.markdown,
            "source": result.source,
            "degenerate": list(streamed.degenerate),
        }
        stored_answer = StoredAnswer(
            "stream", request.topic, request.topic_id, answer, citations, result.partial, usage
        )
        persist, events = answered(ctx, stored_answer, then=_chat_turn(ctx, request, result))
        return Outcome(result=result, persist=persist, events=events)

    async def lesson(self, ctx: CommandContext, request: LessonRequest) -> Outcome[Lesson]:
        """``tutor.lesson`` v1: a markdown micro-lesson, streamed like ``tutor.stream``."""
        stored = await stored_passages(ctx, request.material_ids)
        try:
            prompt = lesson_prompt(request, stored, self.policy)
        except ContextTooSmallError as exc:
            raise refusal(exc, "target_words") from exc
        streamed = await self._stream(
            ctx,
            prompt,
            "tutor.lesson",
            matching_passages(prompt, request.topic, request.focus),
            DEFAULT_STREAM_CHECKS.for_lesson(request.target_words),
        )
        if streamed.error is not None and not streamed.markdown:
            # The autopilot needs a lesson or a clear failure, not an empty text.
            code = streamed.error.code
            raise CommandRejected(
                ANSWER_UNUSABLE.code if code == ANSWER_UNUSABLE.code else MODEL_FAILED.code,
                f"the model gave no lesson: {streamed.error.message}",
            )
        result = read_lesson(streamed.markdown, prompt, source=streamed.source)
        usage = StreamUsage(
            prompt_tokens=prompt.tokens,
            completion_tokens=streamed.deltas,
            latency_ms=round(streamed.latency_ms, 3),
        )
        answer = {
            "markdown": result.markdown,
            "focus": request.focus,
            "source": result.source,
            "degenerate": list(streamed.degenerate),
        }
        persist, events = answered(
            ctx,
            StoredAnswer(
                "lesson", request.topic, None, answer, result.citations, streamed.partial, usage
            ),
        )
        return Outcome(result=result, persist=persist, events=events)

    # ---- images ------------------------------------------------------------------------

    async def explain_image(
        self, ctx: CommandContext, request: ImageExplainRequest
    ) -> Outcome[MultimodalExplanation]:
        """``tutor.explain_image`` v1 (refused when the model cannot see)."""
        del ctx
        try:
            return Outcome(result=await self.workflow.explain_image(request))
        except VisionUnsupportedError as exc:
            raise refusal(exc, "image_base64") from exc
        except ModelFailed as exc:
            raise CommandRejected(MODEL_FAILED.code, f"image_base64: {exc}") from exc

    async def describe_image(
        self, ctx: CommandContext, request: DescribeImageRequest
    ) -> Outcome[ImageDescription]:
        """``tutor.describe_image`` v1 (refused when the model cannot see)."""
        del ctx
        try:
            description = await self.workflow.describe_image(request)
        except VisionUnsupportedError as exc:
            raise refusal(exc, "image_base64") from exc
        except ModelFailed as exc:
            raise CommandRejected(MODEL_FAILED.code, f"image_base64: {exc}") from exc
        return Outcome(result=ImageDescription(description=description))

    # ---- material ----------------------------------------------------------------------

    async def extract_pdf_text(
        self, ctx: CommandContext, request: PdfTextRequest
    ) -> Outcome[PdfText]:
        """``tutor.extract_pdf_text`` v1: the original's limits; nothing stored."""
        del ctx
        try:
            # pypdf is pure Python and slow on big files: off the loop, so streams go on.
            text = await asyncio.to_thread(extract_pdf_text, request.pdf_bytes())
        except MaterialError as exc:
            raise refusal(exc, "pdf_base64") from exc
        return Outcome(result=PdfText(text=text))

    async def add_material(
        self, ctx: CommandContext, request: MaterialAddRequest
    ) -> Outcome[Material]:
        """``tutor.material.add`` v1: a PDF or a text, cut into passages with their pages."""
        data = request.pdf_bytes()
        try:
            if data is not None:
                read = await asyncio.to_thread(read_pdf_pages, data)
                pages, page_count, kind = read.pages, read.page_count, "pdf"
            else:
                pages = text_pages(request.text or "")
                page_count, kind = 1, "text"
        except MaterialError as exc:
            raise refusal(exc, "pdf_base64" if data is not None else "text") from exc
        material_id = uuid4()
        passages = split_passages(pages, material_id=material_id)
        chars = sum(len(p.text) for p in pages)
        title = request.title.strip() or (
            " ".join(pages[0].text.split()[:8]) if pages else kind.upper()
        )

        async def persist(conn: Connection) -> None:
            await repo.insert_material(
                conn,
                material_id=material_id,
                user_id=ctx.user_id,
                request_id=ctx.envelope.request_id,
                title=title[:200],
                kind=kind,
                page_count=page_count,
                chars=chars,
                passages=passages,
            )

        result = Material(
            id=material_id,
            title=title[:200],
            kind=kind,
            pages=page_count,
            chars=chars,
            passages=len(passages),
            created_at=datetime.now(UTC).isoformat(),
        )
        return Outcome(result=result, persist=persist)

    async def delete_material(
        self, ctx: CommandContext, request: MaterialDeleteRequest
    ) -> Outcome[MaterialDeleted]:
        """``tutor.material.delete`` v1 (``material_not_found`` for another user's)."""
        async with ctx.transaction() as conn:
            exists = await repo.material_exists(conn, request.material_id)
        if not exists:
            raise CommandRejected(
                MATERIAL_NOT_FOUND.code,
                f"material_id: no material {request.material_id} of yours",
                {"field": "material_id"},
            )

        async def persist(conn: Connection) -> None:
            await repo.delete_material(conn, request.material_id)

        return Outcome(result=MaterialDeleted(material_id=request.material_id), persist=persist)

    # ---- chat --------------------------------------------------------------------------

    async def save_chat(self, ctx: CommandContext, request: ChatSaveRequest) -> Outcome[ChatSaved]:
        """``tutor.chat.save`` v1: upserts the user's chat of one topic."""

        async def persist(conn: Connection) -> None:
            await repo.save_chat(
                conn,
                user_id=ctx.user_id,
                topic_id=request.topic_id,
                messages=request.messages,
                explanation=request.explanation,
            )

        result = ChatSaved(
            topic_id=request.topic_id, messages=request.messages, explanation=request.explanation
        )
        return Outcome(result=result, persist=persist)


def install_handlers(router: CommandRouter, resources: WorkerResources[TutorSettings]) -> None:
    """Registers the tutor service's handlers on its router.

    Args:
        router: The tutor's router.
        resources: The worker's settings, pool, broker and model client.
    """
    settings = resources.settings
    policy = TutorPolicy(context_tokens=settings.llm_context_tokens)
    workflow = TutorWorkflow(
        resources.llm, policy, vision=settings.llm_vision, model=settings.llm.model
    )
    handlers = TutorHandlers(workflow, policy)
    router.handle(TUTOR_EXPLAIN)(handlers.explain)
    router.handle(TUTOR_STREAM)(handlers.stream)
    router.handle(TUTOR_LESSON)(handlers.lesson)
    router.handle(TUTOR_EXPLAIN_IMAGE)(handlers.explain_image)
    router.handle(TUTOR_DESCRIBE_IMAGE)(handlers.describe_image)
    router.handle(TUTOR_EXTRACT_PDF_TEXT)(handlers.extract_pdf_text)
    router.handle(TUTOR_MATERIAL_ADD)(handlers.add_material)
    router.handle(TUTOR_MATERIAL_DELETE)(handlers.delete_material)
    router.handle(TUTOR_CHAT_SAVE)(handlers.save_chat)
