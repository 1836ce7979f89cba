"""Tutor service settings."""

from __future__ import annotations

from pydantic import Field

from exammentor.contracts.kafka_topics import Service
from exammentor.settings import WorkerSettings


class TutorSettings(WorkerSettings):
    """What the tutor service reads from the environment (``EXAMMENTOR_*``)."""

    service_name: Service = "tutor"
    llm_vision: bool = False
    """Whether the configured model takes OpenAI image input (``EXAMMENTOR_LLM_VISION``).
    Off by default: the embedded SmolLM2 cannot see, so the image routes answer
    ``vision_unsupported`` (422) instead of sending an image it would ignore."""
    llm_context_tokens: int = Field(default=4096, ge=512)
    """The model's context window per request (``EXAMMENTOR_LLM_CONTEXT_TOKENS``); every
    prompt, its material, its chat history and the answer's cap fit within it."""
