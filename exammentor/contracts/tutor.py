"""Tutor contracts: the original system's shapes plus ExamMentor's grounding and streaming.

Field names of the original (``TutorExplanation``, ``MultimodalExplanation``, the explain,
image, PDF and chat bodies) are kept as they were, so its clients keep working. What is new
(``material_ids``, citations, the lesson command, the typed stream events) has defaults or
lives in models of its own.

Every limit is a constant here and a constraint on its field, so bad input is a validation
error that names the field: the gateway answers it with a 422 (413 for the ``*_too_large``
types). Custom error types say what was wrong in words a client can act on:

- ``text_blank``: a required text (``topic``) is empty or only whitespace;
- ``text_not_utf8`` / ``text_has_nul``: text that cannot be stored;
- ``base64_invalid``: ``image_base64`` or ``pdf_base64`` does not decode;
- ``image_type_unknown``: a ``mime_type`` outside :data:`IMAGE_MIME_TYPES`;
- ``image_type_mismatch``: the decoded bytes are not an image of the stated type;
- ``image_too_large`` / ``pdf_too_large``: decoded size over the limit;
- ``topic_id_invalid``: a chat ``topic_id`` that is not a slug.

The tutor's commands (explain, stream, lesson, images, PDF text, material, chat) are declared
at the end, and listed in :mod:`exammentor.contracts.catalog`.

This module imports only pydantic, the standard library and the contracts package.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from exammentor.contracts.commands import Command, ErrorCode

# --- Limits --------------------------------------------------------------------------------

MAX_TOPIC_CHARS = 200
MAX_CONTEXT_CHARS = 20_000
"""The original cut ``context`` at 5,000 characters; ExamMentor accepts more and budgets the
prompt by tokens instead."""
MAX_ATTACHED_CONTEXT_CHARS = 50_000
"""The original cut attached material at 8,000 characters; budgeted by tokens here too."""
MAX_HISTORY_TURNS = 500
MAX_TURN_CHARS = 20_000
MAX_MATERIAL_IDS = 10
MAX_EXPLANATION_CHARS = 100_000
"""A saved chat's ``explanation`` (the first streamed lesson, markdown)."""
MAX_TOPIC_ID_CHARS = 128
TOPIC_ID_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$"
"""A chat's ``topic_id``: a text slug (``kinematics``, ``laws-of-motion``), not a UUID."""

MAX_IMAGE_BYTES = 4 * 1024 * 1024
"""Largest decoded image accepted for explain-image and describe-image."""
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""Image types a vision model takes as OpenAI image input."""
MAX_DESCRIPTION_CHARS = 8_000
"""The original's cap on an image description."""

MAX_PDF_BYTES = 10 * 1024 * 1024
"""Largest decoded PDF accepted by extract-pdf-text."""
EXTRACT_MAX_PAGES = 50
"""extract-pdf-text reads the first 50 pages, as the original did."""
EXTRACT_MAX_CHARS = 12_000
"""extract-pdf-text cuts the text at 12,000 characters, as the original did."""

MIN_LESSON_WORDS = 50
MAX_LESSON_WORDS = 1_500
DEFAULT_LESSON_WORDS = 300
MAX_FOCUS_CHARS = 500

MAX_STEPS = 8
"""Most steps an explanation or a deep dive carries."""

Difficulty = Literal["easy", "medium", "hard"]
ChatRole = Literal["user", "ai"]
"""The original's roles; the tutor maps ``ai`` to the model's ``assistant``."""
StreamEventKind = Literal["token", "reset", "citation", "usage", "error", "done"]
AnswerSource = Literal["model", "extract", "template"]
"""Who wrote an answer: ``model`` (the model's text, checked and repaired), ``extract`` (every
model round failed the quality check; the answer quotes the passages of the student's own
material that match, with their pages) or ``template`` (an explanation whose rounds all
failed and no material matched: a study method of our own, not an invented explanation)."""

_IMAGE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


# --- Field checks ------------------------------------------------------------------------


def _storable(value: str) -> str:
    """Refuse strings that are not storable text (lone surrogates, NUL characters)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry lone surrogates ("\ud800"): decoded text that was never UTF-8.
        raise PydanticCustomError("text_not_utf8", "not valid UTF-8 text") from None
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refuse here rather than fail at the insert.
        raise PydanticCustomError("text_has_nul", "contains NUL characters")
    return value


def _required_text(value: str) -> str:
    _storable(value)
    if not value.strip():
        raise PydanticCustomError("text_blank", "empty or only whitespace; say what it is about")
    return value.strip()


def _decode_base64(value: str) -> bytes:
    # Line breaks are common in base64 pasted or produced by older tools; nothing else is
    # tolerated, so a typo is an error rather than silently different bytes.
    compact = "".join(value.split())
    if not compact:
        raise PydanticCustomError("base64_invalid", "is empty; send the file as base64")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "base64_invalid", "is not valid base64 (standard alphabet, with padding)"
        ) from None


def _base64_within(limit: int, error_type: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        size = len(_decode_base64(value))
        if size > limit:
            raise PydanticCustomError(
                error_type,
                "the {what} is {size} bytes; the limit is {limit} bytes",
                {"what": what, "size": f"{size:,}", "limit": f"{limit:,}"},
            )
        return "".join(value.split())

    return AfterValidator(check)


def _mime_type(value: object) -> object:
    if not isinstance(value, str):
        return value
    folded = value.strip().lower()
    folded = _IMAGE_ALIASES.get(folded, folded)
    if folded not in IMAGE_MIME_TYPES:
        raise PydanticCustomError(
            "image_type_unknown",
            "{value} is not an image type the tutor takes; use one of {known}",
            {"value": repr(value[:60]), "known": ", ".join(IMAGE_MIME_TYPES)},
        )
    return folded


def _topic_id(value: str) -> str:
    if not re.fullmatch(TOPIC_ID_PATTERN, value):
        raise PydanticCustomError(
            "topic_id_invalid",
            "is not a slug: letters, digits, '.', '_' and '-', starting and ending with a "
            "letter or digit",
        )
    return value


def sniff_image_type(data: bytes) -> str | None:
    """The image type of ``data`` by its magic bytes.

    Args:
        data: Decoded image bytes.

    Returns:
        One of :data:`IMAGE_MIME_TYPES`, or None when the bytes are none of them.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


Topic = Annotated[str, Field(max_length=MAX_TOPIC_CHARS), AfterValidator(_required_text)]
"""A topic: non-empty, at most :data:`MAX_TOPIC_CHARS` characters, stripped."""
FreeText = Annotated[str, AfterValidator(_storable)]
ImageMimeType = Annotated[
    str, BeforeValidator(_mime_type), Field(json_schema_extra={"enum": list(IMAGE_MIME_TYPES)})
]
ImageBase64 = Annotated[
    str, _base64_within(MAX_IMAGE_BYTES, "image_too_large", "image"), Field(min_length=1)
]
PdfBase64 = Annotated[
    str, _base64_within(MAX_PDF_BYTES, "pdf_too_large", "PDF"), Field(min_length=1)
]
TopicId = Annotated[
    str,
    Field(
        min_length=1, max_length=MAX_TOPIC_ID_CHARS, json_schema_extra={"pattern": TOPIC_ID_PATTERN}
    ),
    AfterValidator(_topic_id),
]
"""A chat's topic: a text slug of at most :data:`MAX_TOPIC_ID_CHARS` characters."""


# --- Explanations (the original's shapes) ------------------------------------------------


class TutorStep(BaseModel):
    """One step of an explanation."""

    step_number: int = Field(ge=1)
    title: str
    content: str
    analogy: str | None = None


class TutorExplanation(BaseModel):
    """A structured explanation of a topic (the original's ``TutorExplanation``)."""

    topic: str
    intuition: str
    """The idea in one line."""
    steps: list[TutorStep] = Field(min_length=1, max_length=MAX_STEPS)
    real_world_example: str
    common_pitfall: str
    practice_question: str | None = None


class VisualReference(BaseModel):
    """A part of an image the explanation points at."""

    label: str
    region: str
    """Where in the image, in words (``top left``, ``the second graph``)."""
    description: str


class MultimodalExplanation(BaseModel):
    """An explanation of an image (the original's ``MultimodalExplanation``)."""

    topic: str
    intuition: str
    visual_references: list[VisualReference] = Field(default_factory=list)
    explanation: str
    deep_dive: list[TutorStep] = Field(default_factory=list, max_length=MAX_STEPS)
    practice_question: str


class ImageDescription(BaseModel):
    """``/api/describe-image``'s answer: text to use as study material."""

    description: str = Field(max_length=MAX_DESCRIPTION_CHARS)


class PdfText(BaseModel):
    """``/api/extract-pdf-text``'s answer."""

    text: str = Field(max_length=EXTRACT_MAX_CHARS)


# --- Requests ----------------------------------------------------------------------------


class ChatTurn(BaseModel):
    """One turn of a tutor chat, in the original's roles."""

    model_config = ConfigDict(extra="forbid")

    role: ChatRole
    content: Annotated[FreeText, Field(max_length=MAX_TURN_CHARS)]


class ExplainRequest(BaseModel):
    """The body of ``/api/tutor/explain`` and ``/api/tutor/stream`` (and their typed twins).

    ``history`` is the chat so far (oldest first); the tutor keeps the newest turns that fit
    its token budget. ``attached_context`` is material the student pasted; ``material_ids``
    name stored material of the same user, ranked against the topic and context.
    """

    model_config = ConfigDict(extra="forbid")

    topic: Topic
    context: Annotated[FreeText, Field(max_length=MAX_CONTEXT_CHARS)] = ""
    difficulty: Difficulty = "medium"
    history: list[ChatTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    attached_context: Annotated[FreeText, Field(max_length=MAX_ATTACHED_CONTEXT_CHARS)] | None = (
        None
    )
    material_ids: list[UUID] = Field(default_factory=list, max_length=MAX_MATERIAL_IDS)
    topic_id: TopicId | None = None
    """The chat this belongs to: its stored turns are the history when ``history`` is empty,
    and the exchange is added to it (the first whole streamed answer as ``explanation``)."""


StreamRequest = ExplainRequest
"""``/api/tutor/stream`` takes the same body as ``/api/tutor/explain``."""


class _ImageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_base64: ImageBase64
    mime_type: ImageMimeType

    @field_validator("mime_type")
    @classmethod
    def _check_image_type(cls, value: str, info: ValidationInfo) -> str:
        encoded = info.data.get("image_base64")
        if encoded is None:
            return value  # image_base64 already failed and says why
        found = sniff_image_type(base64.b64decode(encoded))
        if found != value:
            # Sent on as is, a mislabelled image is an opaque 4xx from the model server.
            raise PydanticCustomError(
                "image_type_mismatch",
                "image_base64 holds {found}, not {stated} as mime_type says",
                {"found": found or "no PNG, JPEG, WebP or GIF image", "stated": value},
            )
        return value

    def image_bytes(self) -> bytes:
        """The decoded image (valid by construction)."""
        return base64.b64decode(self.image_base64)


class ImageExplainRequest(_ImageBody):
    """The body of ``/api/tutor/explain-image``."""

    topic: Topic


class DescribeImageRequest(_ImageBody):
    """The body of ``/api/describe-image``."""


class PdfTextRequest(BaseModel):
    """The body of ``/api/extract-pdf-text``."""

    model_config = ConfigDict(extra="forbid")

    pdf_base64: PdfBase64

    def pdf_bytes(self) -> bytes:
        """The decoded PDF (valid base64 by construction)."""
        return base64.b64decode(self.pdf_base64)


# --- Chat --------------------------------------------------------------------------------


class ChatHistory(BaseModel):
    """A saved chat of one user about one topic; an empty chat is
    ``{messages: [], explanation: null}``, as in the original."""

    messages: list[ChatTurn] = Field(default_factory=list)
    explanation: str | None = None
    """The first streamed lesson of the topic (markdown), once there is one."""


class ChatSaveRequest(BaseModel):
    """The body of ``POST /api/tutor/chat`` (an upsert of the whole chat).

    The user comes from the token; a ``user_id`` in the body is accepted only so the
    original's client keeps working, and the gateway refuses one that differs.
    """

    model_config = ConfigDict(extra="forbid")

    topic_id: TopicId
    messages: list[ChatTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    explanation: Annotated[FreeText, Field(max_length=MAX_EXPLANATION_CHARS)] | None = None
    user_id: UUID | None = None


# --- Grounding, lesson and the typed stream ----------------------------------------------


class Citation(BaseModel):
    """A page of the student's material an answer cites."""

    model_config = ConfigDict(frozen=True)

    page: int = Field(ge=1)
    material_id: UUID | None = None
    """The stored material; None for text attached to the request."""


class LessonRequest(BaseModel):
    """The payload of the ``tutor.lesson`` command (the autopilot's micro-lessons)."""

    model_config = ConfigDict(extra="forbid")

    topic: Topic
    focus: Annotated[FreeText, Field(max_length=MAX_FOCUS_CHARS)] = ""
    """What to concentrate on (a misconception, a sub-topic); empty for a general lesson."""
    target_words: int = Field(
        default=DEFAULT_LESSON_WORDS, ge=MIN_LESSON_WORDS, le=MAX_LESSON_WORDS
    )
    material_ids: list[UUID] = Field(default_factory=list, max_length=MAX_MATERIAL_IDS)


class Lesson(BaseModel):
    """The result of ``tutor.lesson``: a markdown lesson and the pages it cites."""

    markdown: str
    citations: list[Citation] = Field(default_factory=list)
    source: AnswerSource = "model"
    """``extract`` when the lesson quotes the student's material (no model round passed)."""


class StreamUsage(BaseModel):
    """What an explanation cost."""

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_ms: float = Field(ge=0, allow_inf_nan=False)


class StreamError(BaseModel):
    """Why a stream ended early."""

    code: str
    message: str


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0)
    """Position in the stream, from 0, one per event: a client that resumes says where."""


class TokenEvent(_Event):
    """Text as the model wrote it; concatenated, the tokens are the markdown answer.

    One event carries the text of one or more of the model's tokens: what was ready
    together travels together (never across a ``reset``, a ``citation`` or the end).
    """

    kind: Literal["token"] = "token"
    text: str


class ResetEvent(_Event):
    """Discard the tokens shown so far: the answer is written again from here.

    Sent when the text already relayed is not part of the final answer (the model started
    looping and a retry round, or the student's own material, replaces it). Tokens after it
    are the new answer from its start; the raw-markdown route writes a rule line instead.
    """

    kind: Literal["reset"] = "reset"
    reason: str
    """What the quality check found (``word_list``, ``repeated_phrase``, ``prompt_echo`` ...)."""


class CitationEvent(_Event):
    """A page the answer cites, sent once the answer is complete."""

    kind: Literal["citation"] = "citation"
    citation: Citation


class UsageEvent(_Event):
    """Tokens and time the answer cost."""

    kind: Literal["usage"] = "usage"
    usage: StreamUsage


class ErrorEvent(_Event):
    """The stream failed; a ``done`` event with ``partial`` true follows."""

    kind: Literal["error"] = "error"
    error: StreamError


class DoneEvent(_Event):
    """The last event of every stream."""

    kind: Literal["done"] = "done"
    partial: bool = False
    """True when the answer stopped early (an error, or the client went away)."""
    source: AnswerSource = "model"
    """Who wrote the streamed answer (``extract``: quoted from the student's material)."""


StreamEvent = Annotated[
    TokenEvent | ResetEvent | CitationEvent | UsageEvent | ErrorEvent | DoneEvent,
    Field(discriminator="kind"),
]
"""One line of the typed stream (NDJSON) or one message of the gRPC server stream."""

STREAM_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
"""Parses and dumps :data:`StreamEvent` values (``STREAM_EVENT.validate_json(line)``)."""


# --- Results the original did not have ------------------------------------------------


class GroundedExplanation(TutorExplanation):
    """``tutor.explain``'s result: the original's ``TutorExplanation`` plus the pages it
    cites (a field the original's clients ignore)."""

    citations: list[Citation] = Field(default_factory=list)
    source: AnswerSource = "model"
    """``extract`` or ``template`` when no model round passed the quality check."""


class StreamResult(BaseModel):
    """``tutor.stream``'s final result, stored; its tokens travel as progress before it."""

    markdown: str
    citations: list[Citation] = Field(default_factory=list)
    usage: StreamUsage
    partial: bool = False
    """True when generation stopped early (the client went away, or the model failed)."""
    error: StreamError | None = None
    source: AnswerSource = "model"
    """``extract`` when the answer quotes the student's material (no model round passed)."""


# --- Study material ------------------------------------------------------------------

MAX_MATERIAL_TITLE_CHARS = 200
MAX_MATERIAL_TEXT_CHARS = 400_000
"""A text upload's largest size (the PDF path has its own limits, stated in its errors)."""

MaterialKind = Literal["pdf", "text"]


class MaterialAddRequest(BaseModel):
    """The payload of ``tutor.material.add``: one PDF (base64) or one text, never both.

    ``POST /api/materials`` builds it from a multipart upload (a file part, or a ``text``
    field) or takes it as JSON.
    """

    model_config = ConfigDict(extra="forbid")

    title: Annotated[FreeText, Field(max_length=MAX_MATERIAL_TITLE_CHARS)] = ""
    pdf_base64: PdfBase64 | None = None
    text: Annotated[FreeText, Field(max_length=MAX_MATERIAL_TEXT_CHARS)] | None = None

    @field_validator("text")
    @classmethod
    def _one_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_pdf = info.data.get("pdf_base64") is not None
        if value is not None and has_pdf:
            raise PydanticCustomError(
                "material_two_sources", "send either pdf_base64 or text, not both"
            )
        return value

    @model_validator(mode="after")
    def _has_source(self) -> MaterialAddRequest:
        if self.pdf_base64 is None and self.text is None:
            raise PydanticCustomError(
                "material_missing", "send the material: a PDF as pdf_base64, or a text"
            )
        return self

    def pdf_bytes(self) -> bytes | None:
        """The decoded PDF, or None for a text upload."""
        return None if self.pdf_base64 is None else base64.b64decode(self.pdf_base64)


class Material(BaseModel):
    """One piece of a user's study material, as listed (without its text)."""

    id: UUID
    title: str
    kind: MaterialKind
    pages: int = Field(ge=0)
    chars: int = Field(ge=0)
    passages: int = Field(ge=0)
    created_at: str
    """ISO 8601, UTC."""


class MaterialList(BaseModel):
    """``GET /api/materials``: the caller's material, newest first."""

    materials: list[Material] = Field(default_factory=list)


class MaterialDeleteRequest(BaseModel):
    """The payload of ``tutor.material.delete``."""

    model_config = ConfigDict(extra="forbid")

    material_id: UUID


class MaterialDeleted(BaseModel):
    """``tutor.material.delete``'s result."""

    material_id: UUID
    deleted: bool = True


class ChatSaved(BaseModel):
    """``tutor.chat.save``'s result: the chat as stored."""

    topic_id: str
    messages: list[ChatTurn] = Field(default_factory=list)
    explanation: str | None = None


# --- Commands --------------------------------------------------------------------------

MATERIAL_UNKNOWN = ErrorCode(
    "material_unknown",
    422,
    "INVALID_ARGUMENT",
    "A material id names no material of the caller's; the message names the field.",
)
MATERIAL_NOT_FOUND = ErrorCode(
    "material_not_found", 404, "NOT_FOUND", "No material with this id of the caller's."
)
VISION_UNSUPPORTED = ErrorCode(
    "vision_unsupported",
    422,
    "FAILED_PRECONDITION",
    "The configured model cannot read images (EXAMMENTOR_LLM_VISION is off).",
)
MODEL_FAILED = ErrorCode(
    "model_failed",
    503,
    "UNAVAILABLE",
    "The model server failed on every retry; nothing was stored; retry later.",
)
ANSWER_UNUSABLE = ErrorCode(
    "answer_unusable",
    503,
    "UNAVAILABLE",
    "Every model round looped or copied its prompt, and no material of the request matches "
    "the topic to quote instead; nothing was stored; retry, or name material to study from.",
)
PROMPT_TOO_LARGE = ErrorCode(
    "prompt_too_large",
    422,
    "INVALID_ARGUMENT",
    "The request leaves no room for an answer in the model's context window.",
)
PDF_ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode("pdf_unreadable", 422, "INVALID_ARGUMENT", "The bytes are not a readable PDF."),
    ErrorCode("pdf_encrypted", 422, "INVALID_ARGUMENT", "The PDF needs a password."),
    ErrorCode("pdf_no_text", 422, "INVALID_ARGUMENT", "No page holds text (scans, images)."),
    ErrorCode("pdf_too_large", 413, "INVALID_ARGUMENT", "The PDF is over the size limit."),
    ErrorCode("pdf_too_many_pages", 413, "INVALID_ARGUMENT", "The PDF has too many pages."),
)
MATERIAL_ERRORS: tuple[ErrorCode, ...] = (
    *PDF_ERRORS,
    ErrorCode("material_too_long", 413, "INVALID_ARGUMENT", "More text than material may hold."),
    ErrorCode("material_empty", 422, "INVALID_ARGUMENT", "The material holds no text."),
)

USER_MISMATCH = ErrorCode(
    "user_mismatch",
    403,
    "PERMISSION_DENIED",
    "user_id names another user than the bearer token's (the user comes from the token).",
)

TUTOR_EXPLAIN: Command[ExplainRequest, GroundedExplanation] = Command(
    "tutor.explain",
    1,
    "tutor",
    ExplainRequest,
    GroundedExplanation,
    errors=(MATERIAL_UNKNOWN, MODEL_FAILED, PROMPT_TOO_LARGE),
    summary="A structured explanation, grounded in the student's material, repaired when off.",
)
TUTOR_STREAM: Command[ExplainRequest, StreamResult] = Command(
    "tutor.stream",
    1,
    "tutor",
    ExplainRequest,
    StreamResult,
    errors=(MATERIAL_UNKNOWN, MODEL_FAILED, ANSWER_UNUSABLE, PROMPT_TOO_LARGE),
    summary=(
        "A markdown explanation streamed token by token (progress chunks), stored whole, "
        "or as partial when the client went away."
    ),
)
TUTOR_LESSON: Command[LessonRequest, Lesson] = Command(
    "tutor.lesson",
    1,
    "tutor",
    LessonRequest,
    Lesson,
    errors=(MATERIAL_UNKNOWN, MODEL_FAILED, ANSWER_UNUSABLE, PROMPT_TOO_LARGE),
    summary="A markdown micro-lesson on a topic and focus, streamed like tutor.stream.",
)
TUTOR_EXPLAIN_IMAGE: Command[ImageExplainRequest, MultimodalExplanation] = Command(
    "tutor.explain_image",
    1,
    "tutor",
    ImageExplainRequest,
    MultimodalExplanation,
    errors=(VISION_UNSUPPORTED, MODEL_FAILED),
    summary="Explain an image (OpenAI image input); refused when the model cannot see.",
)
TUTOR_DESCRIBE_IMAGE: Command[DescribeImageRequest, ImageDescription] = Command(
    "tutor.describe_image",
    1,
    "tutor",
    DescribeImageRequest,
    ImageDescription,
    errors=(VISION_UNSUPPORTED, MODEL_FAILED),
    summary="Describe an image as study text; refused when the model cannot see.",
)
TUTOR_EXTRACT_PDF_TEXT: Command[PdfTextRequest, PdfText] = Command(
    "tutor.extract_pdf_text",
    1,
    "tutor",
    PdfTextRequest,
    PdfText,
    errors=PDF_ERRORS,
    summary="The text of a PDF's first 50 pages, cut at 12,000 characters (nothing stored).",
)
TUTOR_MATERIAL_ADD: Command[MaterialAddRequest, Material] = Command(
    "tutor.material.add",
    1,
    "tutor",
    MaterialAddRequest,
    Material,
    errors=MATERIAL_ERRORS,
    summary="Store a PDF or a text as the caller's material, split into passages with pages.",
)
TUTOR_MATERIAL_DELETE: Command[MaterialDeleteRequest, MaterialDeleted] = Command(
    "tutor.material.delete",
    1,
    "tutor",
    MaterialDeleteRequest,
    MaterialDeleted,
    errors=(MATERIAL_NOT_FOUND,),
    summary="Delete one of the caller's materials and its passages.",
)
TUTOR_CHAT_SAVE: Command[ChatSaveRequest, ChatSaved] = Command(
    "tutor.chat.save",
    1,
    "tutor",
    ChatSaveRequest,
    ChatSaved,
    errors=(USER_MISMATCH,),
    summary="Upsert the caller's chat about one topic (messages and first explanation).",
)

TUTOR_COMMANDS: tuple[Command[Any, Any], ...] = (
    TUTOR_EXPLAIN,
    TUTOR_STREAM,
    TUTOR_LESSON,
    TUTOR_EXPLAIN_IMAGE,
    TUTOR_DESCRIBE_IMAGE,
    TUTOR_EXTRACT_PDF_TEXT,
    TUTOR_MATERIAL_ADD,
    TUTOR_MATERIAL_DELETE,
    TUTOR_CHAT_SAVE,
)
"""Every command the tutor service handles (besides the kit's ``system.echo``)."""
