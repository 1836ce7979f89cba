"""Tutor contracts: the original's shapes, and bad input refused naming the field."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from exammentor.contracts.tutor import (
    MAX_IMAGE_BYTES,
    MAX_PDF_BYTES,
    STREAM_EVENT,
    ChatHistory,
    ChatSaveRequest,
    CitationEvent,
    DescribeImageRequest,
    DoneEvent,
    ExplainRequest,
    ImageDescription,
    ImageExplainRequest,
    LessonRequest,
    PdfTextRequest,
    TokenEvent,
    TutorExplanation,
    sniff_image_type,
)

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(32)
PNG = base64.b64encode(PNG_BYTES).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(32)).decode()


def only_error(model: type[BaseModel], data: dict[str, Any]) -> tuple[str, tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["type"], errors[0]["loc"], errors[0]["msg"]


def test_explain_defaults_are_the_originals() -> None:
    request = ExplainRequest.model_validate({"topic": "  Optics ", "context": "NEET physics"})
    assert (request.topic, request.difficulty, request.history) == ("Optics", "medium", [])
    assert (request.attached_context, request.material_ids) == (None, [])


@pytest.mark.parametrize(
    ("data", "expected_type", "field"),
    [
        ({"topic": " "}, "text_blank", ("topic",)),
        ({"topic": ""}, "text_blank", ("topic",)),
        ({"topic": "x" * 201}, "string_too_long", ("topic",)),
        ({"topic": "Optics", "difficulty": "extreme"}, "literal_error", ("difficulty",)),
        ({"topic": "Optics", "context": "a\x00b"}, "text_has_nul", ("context",)),
        ({"topic": "Optics", "material_ids": ["not-a-uuid"]}, "uuid_parsing", ("material_ids", 0)),
        (
            {"topic": "Optics", "history": [{"role": "assistant", "content": "hi"}]},
            "literal_error",
            ("history", 0, "role"),
        ),
        ({"topic": "Optics", "user_id": "x"}, "extra_forbidden", ("user_id",)),
    ],
)
def test_bad_explain_input_names_the_field(
    data: dict[str, Any], expected_type: str, field: tuple[Any, ...]
) -> None:
    error_type, loc, _ = only_error(ExplainRequest, data)
    assert (error_type, loc) == (expected_type, field)


def test_history_keeps_the_original_roles() -> None:
    request = ExplainRequest.model_validate(
        {
            "topic": "Optics",
            "history": [{"role": "user", "content": "q"}, {"role": "ai", "content": "a"}],
        }
    )
    assert [turn.role for turn in request.history] == ["user", "ai"]


def test_an_image_request_decodes_and_normalises_its_type() -> None:
    request = ImageExplainRequest.model_validate(
        {"topic": "Graphs", "image_base64": PNG[:10] + "\n" + PNG[10:], "mime_type": "Image/PNG"}
    )
    assert request.mime_type == "image/png"
    assert request.image_bytes() == PNG_BYTES
    jpg = DescribeImageRequest.model_validate({"image_base64": JPEG, "mime_type": "image/jpg"})
    assert jpg.mime_type == "image/jpeg"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"image_base64": "%%%", "mime_type": "image/png"},
            ("base64_invalid", ("image_base64",), "is not valid base64"),
        ),
        (
            {"image_base64": PNG, "mime_type": "image/tiff"},
            ("image_type_unknown", ("mime_type",), "'image/tiff' is not an image type"),
        ),
        (
            {"image_base64": PNG, "mime_type": "image/jpeg"},
            ("image_type_mismatch", ("mime_type",), "image_base64 holds image/png, not image/jpeg"),
        ),
        (
            {"image_base64": base64.b64encode(b"hello").decode(), "mime_type": "image/png"},
            ("image_type_mismatch", ("mime_type",), "image_base64 holds no PNG, JPEG"),
        ),
    ],
)
def test_bad_images_name_the_field(data: dict[str, Any], expected: tuple[Any, ...]) -> None:
    error_type, loc, message = only_error(DescribeImageRequest, data)
    assert (error_type, loc) == expected[:2]
    assert message.startswith(expected[2])


def test_an_image_over_the_limit_states_the_limit() -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES)).decode()
    error_type, loc, message = only_error(
        DescribeImageRequest, {"image_base64": big, "mime_type": "image/png"}
    )
    assert (error_type, loc) == ("image_too_large", ("image_base64",))
    assert f"the limit is {MAX_IMAGE_BYTES:,} bytes" in message


def test_pdf_base64_is_checked_and_decoded() -> None:
    assert PdfTextRequest(pdf_base64=base64.b64encode(b"%PDF-").decode()).pdf_bytes() == b"%PDF-"
    error_type, loc, _ = only_error(PdfTextRequest, {"pdf_base64": "abc"})
    assert (error_type, loc) == ("base64_invalid", ("pdf_base64",))
    big = base64.b64encode(bytes(MAX_PDF_BYTES + 1)).decode()
    assert only_error(PdfTextRequest, {"pdf_base64": big})[0] == "pdf_too_large"


def test_an_empty_chat_is_the_originals() -> None:
    assert ChatHistory().model_dump() == {"messages": [], "explanation": None}


@pytest.mark.parametrize("slug", ["kinematics", "laws-of-motion", "Unit_3.2", "a"])
def test_chat_topic_ids_are_slugs(slug: str) -> None:
    assert ChatSaveRequest(topic_id=slug).topic_id == slug


@pytest.mark.parametrize("slug", ["", "has space", "-leading", "trailing-", "a/b", "x" * 129])
def test_other_topic_ids_are_refused(slug: str) -> None:
    error_type, loc, _ = only_error(ChatSaveRequest, {"topic_id": slug})
    assert loc == ("topic_id",)
    assert error_type in {"topic_id_invalid", "string_too_short", "string_too_long"}


def test_a_chat_may_carry_the_originals_user_id() -> None:
    user = uuid.uuid4()
    assert ChatSaveRequest(topic_id="optics", user_id=user).user_id == user


def test_lesson_length_is_bounded() -> None:
    assert LessonRequest(topic="Optics").target_words == 300
    assert only_error(LessonRequest, {"topic": "Optics", "target_words": 10})[1] == (
        "target_words",
    )


def test_stream_events_round_trip_by_kind() -> None:
    line = '{"seq": 3, "kind": "citation", "citation": {"page": 3}}'
    event = STREAM_EVENT.validate_json(line)
    assert isinstance(event, CitationEvent)
    assert event.citation.page == 3
    token = STREAM_EVENT.validate_python({"seq": 0, "kind": "token", "text": "Hi"})
    assert token == TokenEvent(seq=0, text="Hi")
    assert STREAM_EVENT.dump_python(DoneEvent(seq=9)) == {
        "seq": 9,
        "kind": "done",
        "partial": False,
        "source": "model",
    }
    with pytest.raises(ValidationError):
        STREAM_EVENT.validate_python({"seq": 1, "kind": "token"})
    with pytest.raises(ValidationError):
        STREAM_EVENT.validate_python({"seq": -1, "kind": "done"})


def test_the_original_shapes_keep_their_field_names() -> None:
    assert list(TutorExplanation.model_fields) == [
        "topic",
        "intuition",
        "steps",
        "real_world_example",
        "common_pitfall",
        "practice_question",
    ]
    with pytest.raises(ValidationError):
        ImageDescription(description="x" * 8_001)


def test_image_types_are_sniffed_from_their_bytes() -> None:
    assert sniff_image_type(PNG_BYTES) == "image/png"
    assert sniff_image_type(b"GIF89a...") == "image/gif"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"%PDF") is None
