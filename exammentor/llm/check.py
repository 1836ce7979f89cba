"""``exammentor model check``: what the configured model endpoint can do for the services.

One call per capability the services use, through the same :class:`~exammentor.llm.client.LLMClient`
they use, against the endpoint :class:`~exammentor.settings.LLMSettings` names
(``OPENAI_BASE_URL``, ``OPENAI_MODEL``, ``OPENAI_API_KEY``):

- **chat**: a plain completion. Every model call builds on it; the command fails (exit 1)
  without it.
- **json_schema**: ``response_format`` of type ``json_schema``, the answer validated against
  the schema (planner routing and words, tutor explanations, quiz questions).
- **streaming**: ``stream: true``, text deltas as they come (tutor answers, lessons).
- **vision**: a user message with an image part (a generated picture of one colour); it
  works when the answer names the colour, so a server that accepts the image and ignores it
  does not pass (the image routes).

No retries and no repair rounds: one call each, so a failure is the endpoint's, not bad luck
hidden by a retry. Each capability that fails is reported with what the services then do
instead (:data:`FALLBACKS`); what they do is the services' own behaviour, stated here in
words for the operator, not decided here.
"""

from __future__ import annotations

import base64
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from exammentor.llm.client import LLMClient, LLMError, PartsMessage
from exammentor.settings import LLMSettings

__all__ = [
    "CAPABILITIES",
    "EMBEDDED_BASE_URL",
    "FALLBACKS",
    "CapabilityResult",
    "ModelReport",
    "check_model",
    "render",
    "solid_png",
]

Capability = Literal["chat", "json_schema", "streaming", "vision"]
CAPABILITIES: tuple[Capability, ...] = ("chat", "json_schema", "streaming", "vision")
EMBEDDED_BASE_URL = LLMSettings.model_fields["base_url"].default
"""The embedded llama.cpp server's address; ``deploy/local/llm.sh`` starts that server only
while ``OPENAI_BASE_URL`` is unset or this value."""

VISION_SWITCHES = {
    "EXAMMENTOR_LLM_VISION": "tutor: /api/tutor/explain-image, /api/describe-image",
    "EXAMMENTOR_VISION_MODEL": "quiz: /api/quiz/generate-from-image",
}
"""The settings that open the image routes (off by default: the embedded model cannot see)."""

FALLBACKS: dict[Capability, str] = {
    "chat": (
        "no model text at all: plans are still computed and verified, in the scheduler's own "
        "words; tutor explanations are the tutor's own text; streamed tutor answers end "
        "partial with error model_failed and lessons (autopilot too) fail with model_failed; "
        "quizzes are built from the request's source text (context, lesson or material) as "
        "labelled extracts, and answer quiz_unavailable (422) when there is none"
    ),
    "json_schema": (
        "structured answers fail: plans keep the scheduler's words and route by the goal's "
        "words alone; tutor explanations quote the student's material as extracts (or the "
        "tutor's own text without material); quizzes are built from the request's source text "
        "(context, lesson or material) as labelled extracts, and answer quiz_unavailable (422) "
        "when there is none"
    ),
    "streaming": (
        "streamed tutor answers (/api/tutor/stream) end partial with error model_failed, and "
        "lessons (autopilot too) fail with model_failed"
    ),
    "vision": (
        "the image routes answer vision_unsupported (422) while EXAMMENTOR_LLM_VISION and "
        "EXAMMENTOR_VISION_MODEL are off (the default)"
    ),
}
"""What the services do when a capability does not work."""

_CHECK_COLOUR = ("red", (220, 20, 20))
_MAX_SHOWN = 80


class _JsonProbe(BaseModel):
    """The answer of the JSON schema check: any word, in the schema's shape."""

    model_config = ConfigDict(extra="forbid")

    answer: str


@dataclass(frozen=True)
class CapabilityResult:
    """How one capability did.

    Attributes:
        name: The capability.
        ok: Whether it works for the services.
        latency_ms: The call's time, start to end (to the last delta when streaming).
        detail: What came back (shortened), or why it failed.
        first_delta_ms: Streaming only: time to the first delta.
    """

    name: Capability
    ok: bool
    latency_ms: float
    detail: str
    first_delta_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The result for machines."""
        return {
            "name": self.name,
            "ok": self.ok,
            "latency_ms": round(self.latency_ms, 1),
            "first_delta_ms": (
                None if self.first_delta_ms is None else round(self.first_delta_ms, 1)
            ),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ModelReport:
    """What the endpoint can do.

    Attributes:
        base_url: The endpoint.
        model: The model name sent.
        results: One per capability, in :data:`CAPABILITIES` order.
        vision_switches: Each image-route setting and whether it is on.
    """

    base_url: str
    model: str
    results: tuple[CapabilityResult, ...]
    vision_switches: dict[str, bool]

    @property
    def chat_works(self) -> bool:
        """Whether plain chat works (the command's exit status rests on it)."""
        return any(r.name == "chat" and r.ok for r in self.results)

    def fallbacks(self) -> list[str]:
        """What will fall back, and what to switch, in words for the operator."""
        lines: list[str] = []
        by_name = {r.name: r for r in self.results}
        for name in CAPABILITIES:
            result = by_name.get(name)
            if result is None or result.ok or name == "vision":
                continue
            lines.append(f"{name}: {FALLBACKS[name]}")
        vision = by_name.get("vision")
        if vision is not None:
            switched_on = [key for key, on in self.vision_switches.items() if on]
            switched_off = [key for key, on in self.vision_switches.items() if not on]
            if vision.ok and switched_off:
                lines.append(
                    "vision: the model can see; to open the image routes set "
                    + ", ".join(f"{key}=true ({VISION_SWITCHES[key]})" for key in switched_off)
                )
            elif not vision.ok and switched_on:
                lines.append(
                    f"vision: {', '.join(switched_on)} is on but the model cannot see: tutor "
                    "image routes will answer model_failed (503) and image quizzes "
                    "quiz_unavailable (422); turn it off so they answer vision_unsupported (422)"
                )
            elif not vision.ok:
                lines.append(f"vision: {FALLBACKS['vision']}")
        return lines

    def as_json(self) -> dict[str, Any]:
        """The report for machines."""
        return {
            "base_url": self.base_url,
            "model": self.model,
            "embedded": self.base_url.rstrip("/") == EMBEDDED_BASE_URL,
            "chat_works": self.chat_works,
            "results": [r.as_json() for r in self.results],
            "vision_switches": self.vision_switches,
            "fallbacks": self.fallbacks(),
        }


def solid_png(rgb: tuple[int, int, int], size: int = 32) -> bytes:
    """A PNG of one colour (no imaging library needed).

    Args:
        rgb: The colour.
        size: Width and height in pixels.

    Returns:
        The PNG file's bytes.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * size  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def _shown(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_SHOWN else flat[: _MAX_SHOWN - 3] + "..."


def _failure(exc: LLMError) -> str:
    status = f"HTTP {exc.status_code}: " if exc.status_code else ""
    return f"{status}{exc.reason}"


async def _chat(llm: LLMClient) -> tuple[bool, str, float | None]:
    text = await llm.text(
        messages=[{"role": "user", "content": "Reply with the single word OK."}],
        purpose="model_check.chat",
        max_tokens=8,
    )
    return (
        bool(text.strip()),
        f"answered {_shown(text)!r}" if text.strip() else "empty answer",
        None,
    )


async def _json_schema(llm: LLMClient) -> tuple[bool, str, float | None]:
    answer = await llm.structured(
        messages=[
            {"role": "system", "content": "Reply with JSON only."},
            {"role": "user", "content": 'Is water wet? Reply as {"answer": "<one word>"}.'},
        ],
        schema=_JsonProbe,
        purpose="model_check.json_schema",
        max_tokens=32,
    )
    return True, f"valid JSON {answer.model_dump_json()}", None


async def _streaming(llm: LLMClient) -> tuple[bool, str, float | None]:
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    async for delta in llm.stream_text(
        messages=[{"role": "user", "content": "Count from one to five in words."}],
        purpose="model_check.streaming",
        max_tokens=24,
    ):
        if first is None:
            first = (time.perf_counter() - started) * 1000
        parts.append(delta)
    if not parts:
        return False, "the stream ended without text", first
    how = "in one piece" if len(parts) == 1 else f"in {len(parts)} deltas"
    return True, f"{how}: {_shown(''.join(parts))!r}", first


async def _vision(llm: LLMClient) -> tuple[bool, str, float | None]:
    colour, rgb = _CHECK_COLOUR
    image = base64.b64encode(solid_png(rgb)).decode("ascii")
    message: PartsMessage = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What colour is this image? Answer with one word."},
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{image}", "detail": "low"},
            },
        ],
    }
    text = await llm.text(messages=[message], purpose="model_check.vision", max_tokens=8)
    if colour in text.lower():
        return True, f"named the image's colour: {_shown(text)!r}", None
    return (
        False,
        f"the image was sent but the answer does not name its colour ({colour}): {_shown(text)!r}",
        None,
    )


_PROBES: dict[Capability, Callable[[LLMClient], Awaitable[tuple[bool, str, float | None]]]] = {
    "chat": _chat,
    "json_schema": _json_schema,
    "streaming": _streaming,
    "vision": _vision,
}


def _switch_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


async def check_model(
    settings: LLMSettings,
    *,
    timeout_s: float | None = None,
    capabilities: tuple[Capability, ...] = CAPABILITIES,
) -> ModelReport:
    """Calls the endpoint once per capability and reports what works.

    Args:
        settings: The endpoint (``OPENAI_*``); its retries and repair rounds are not used.
        timeout_s: Per call; the settings' timeout when None.
        capabilities: Which to check, in order.

    Returns:
        The report.
    """
    once = settings.model_copy(
        update={
            "max_retries": 0,
            "repair_attempts": 0,
            "timeout_s": timeout_s if timeout_s is not None else settings.timeout_s,
        }
    )
    results: list[CapabilityResult] = []
    async with LLMClient(once) as llm:
        for name in capabilities:
            started = time.perf_counter()
            try:
                ok, detail, first = await _PROBES[name](llm)
            except LLMError as exc:
                ok, detail, first = False, _failure(exc), None
            elapsed = (time.perf_counter() - started) * 1000
            results.append(CapabilityResult(name, ok, elapsed, detail, first))
    return ModelReport(
        base_url=settings.base_url,
        model=settings.model,
        results=tuple(results),
        vision_switches={name: _switch_on(name) for name in VISION_SWITCHES},
    )


def render(report: ModelReport) -> list[str]:
    """The report for people: one line per capability, then what falls back.

    Args:
        report: From :func:`check_model`.

    Returns:
        Lines to print.
    """
    embedded = report.base_url.rstrip("/") == EMBEDDED_BASE_URL
    where = " (the embedded server; set OPENAI_BASE_URL to use another)" if embedded else ""
    lines = [f"model {report.model} at {report.base_url}{where}"]
    for result in report.results:
        mark = "ok" if result.ok else "FAILED"
        first = (
            f", first delta after {result.first_delta_ms:.0f} ms"
            if result.first_delta_ms is not None
            else ""
        )
        lines.append(
            f"  {result.name:<12} {mark:<7} {result.latency_ms:>8.0f} ms  {result.detail}{first}"
        )
    fallbacks = report.fallbacks()
    if fallbacks:
        lines.append("what this means for the services:")
        lines.extend(f"  {line}" for line in fallbacks)
    else:
        lines.append("every capability the services use works")
    if not report.chat_works:
        lines.append("chat does not work: the services cannot use this endpoint")
    return lines
