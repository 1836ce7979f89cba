"""Images as OpenAI chat input: a data URL and the content parts of a user message.

The shapes are the OpenAI chat API's own (``{"type": "text"}`` and ``{"type": "image_url",
"image_url": {"url": "data:image/png;base64,..."}}``), so any OpenAI-compatible server that
can see takes them as they are. Whether the configured model can see is the service's
setting; a model that cannot is refused before any call (:class:`VisionUnsupportedError`).
"""

from __future__ import annotations

from typing import Literal, TypedDict

from exammentor.contracts.tutor import IMAGE_MIME_TYPES

ImageDetail = Literal["auto", "low", "high"]


class TextPart(TypedDict):
    """A text part of a user message."""

    type: Literal["text"]
    text: str


class ImageUrl(TypedDict):
    """Where the image is: here always a data URL."""

    url: str
    detail: ImageDetail


class ImagePart(TypedDict):
    """An image part of a user message."""

    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = TextPart | ImagePart


class VisionMessage(TypedDict):
    """A user message with text and an image."""

    role: Literal["user"]
    content: list[ContentPart]


def image_data_url(image_base64: str, mime_type: str) -> str:
    """The image as a ``data:`` URL.

    Args:
        image_base64: The image, base64 (as validated by the request contract).
        mime_type: One of :data:`~exammentor.contracts.tutor.IMAGE_MIME_TYPES`.

    Returns:
        ``data:<mime_type>;base64,<data>``.

    Raises:
        ValueError: A type the contracts do not accept (a caller that skipped validation).
    """
    if mime_type not in IMAGE_MIME_TYPES:
        raise ValueError(f"{mime_type!r} is not one of {', '.join(IMAGE_MIME_TYPES)}")
    return f"data:{mime_type};base64,{''.join(image_base64.split())}"


def image_message(
    text: str, image_base64: str, mime_type: str, *, detail: ImageDetail = "auto"
) -> VisionMessage:
    """A user message that asks ``text`` about an image.

    Args:
        text: The question or instruction about the image.
        image_base64: The image, base64.
        mime_type: Its type.
        detail: How closely the model should look (``auto`` lets the server choose).

    Returns:
        The message: the text part first, then the image part.
    """
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {
                "type": "image_url",
                "image_url": {"url": image_data_url(image_base64, mime_type), "detail": detail},
            },
        ],
    }
