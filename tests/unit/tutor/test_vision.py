"""Image input in the OpenAI chat shape."""

from __future__ import annotations

import base64

import pytest

from services.tutor.domain import VisionUnsupportedError, image_data_url, image_message

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()


def test_the_data_url_carries_the_type_and_the_base64() -> None:
    assert image_data_url(PNG, "image/png") == f"data:image/png;base64,{PNG}"
    assert image_data_url(PNG[:8] + "\n" + PNG[8:], "image/png").endswith(PNG)


def test_an_unvalidated_type_is_refused() -> None:
    with pytest.raises(ValueError, match="image/bmp"):
        image_data_url(PNG, "image/bmp")


def test_the_message_holds_the_text_then_the_image() -> None:
    message = image_message("What does this graph show?", PNG, "image/png", detail="low")
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What does this graph show?"},
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
            },
        ],
    }


def test_a_model_that_cannot_see_is_refused_by_name() -> None:
    error = VisionUnsupportedError("smollm2-135m")
    assert error.code == "vision_unsupported"
    assert "'smollm2-135m' cannot read images" in str(error)
