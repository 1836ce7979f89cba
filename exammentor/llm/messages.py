"""What the model client takes and reports: chat messages (text, or text and images), token
estimates for servers that report none, the usage record of each call, and the errors a
caller handles."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

CHARS_PER_TOKEN = 4
"""Rough size of a token in English text, for usage estimates when a server reports none."""


class ChatMessage(TypedDict):
    """One chat turn, in the shape the OpenAI chat API takes."""

    role: Literal["system", "user", "assistant"]
    content: str


class TextContent(TypedDict):
    """A text part of a user message with parts."""

    type: Literal["text"]
    text: str


class ImageUrlRef(TypedDict):
    """Where an image part's image is (a ``data:`` URL or an https URL)."""

    url: str
    detail: Literal["auto", "low", "high"]


class ImageContent(TypedDict):
    """An image part of a user message (OpenAI image input)."""

    type: Literal["image_url"]
    image_url: ImageUrlRef


class PartsMessage(TypedDict):
    """A user message of text and image parts, for a model that can see."""

    role: Literal["user"]
    content: Sequence[TextContent | ImageContent]


Message = ChatMessage | PartsMessage
"""Any message :meth:`LLMClient.structured` and :meth:`LLMClient.text` take."""


IMAGE_PART_TOKENS = 765
"""Estimated prompt tokens of one image part (OpenAI's cost of a 1024 px tile image), for
usage estimates when a server reports none."""


@dataclass(frozen=True)
class LLMUsage:
    """What one HTTP call to the model cost and how it ended.

    Attributes:
        purpose: The caller's name for the call (``plan.rationale``, ``quiz.generate`` ...).
        model: Model the server says answered (the configured one when it did not answer).
        prompt_tokens: Input tokens, as reported, else estimated.
        completion_tokens: Output tokens, as reported, else estimated.
        latency_ms: Wall time of the call, to the last streamed chunk for streams.
        outcome: ``ok``; ``retry`` (failed, tried again); ``invalid`` (answered, but the output
            failed validation); ``error`` (failed, not tried again).
    """

    purpose: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    outcome: str


UsageSink = Callable[[LLMUsage], Awaitable[None]]


class LLMError(Exception):
    """A model call failed; ``reason`` says why in words fit for a log or a 4xx/5xx body.

    Raised as is when the endpoint refused the request (a 4xx other than 408/429), which
    retrying cannot fix: a bad model name, a bad key, a prompt too long for the context.
    """

    def __init__(self, reason: str, *, purpose: str, status_code: int | None = None) -> None:
        """Builds the error.

        Args:
            reason: What went wrong.
            purpose: The call's purpose.
            status_code: HTTP status of the last answer, when there was one.
        """
        super().__init__(f"{purpose}: {reason}")
        self.reason = reason
        self.purpose = purpose
        self.status_code = status_code


class LLMUnavailable(LLMError):
    """The endpoint kept failing (overload, 5xx, timeouts, no connection) past the retries."""


class LLMInvalidOutput(LLMError):
    """The model's output stayed invalid after every repair round."""

    def __init__(self, reason: str, *, purpose: str, errors: Sequence[str], output: str) -> None:
        """Builds the error.

        Args:
            reason: What went wrong.
            purpose: The call's purpose.
            errors: The validation errors of the last output.
            output: The last output, for the log.
        """
        super().__init__(reason, purpose=purpose)
        self.errors = tuple(errors)
        self.output = output


def estimate_tokens(text: str) -> int:
    """Estimates the tokens of ``text`` for servers that report no usage.

    Args:
        text: Any text.

    Returns:
        About one token per four characters; zero for empty text.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt(messages: Sequence[Message]) -> int:
    # A few tokens per message for the chat template's role markers.
    total = 0
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            total += estimate_tokens(content) + 4
            continue
        for part in content:
            if part["type"] == "text":
                total += estimate_tokens(part["text"])
            else:
                total += IMAGE_PART_TOKENS
        total += 4
    return total
