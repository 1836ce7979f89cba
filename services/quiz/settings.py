"""Quiz service settings."""

from __future__ import annotations

from pydantic import Field

from exammentor.contracts.kafka_topics import Service
from exammentor.settings import WorkerSettings


class QuizSettings(WorkerSettings):
    """What the quiz service reads from the environment (``EXAMMENTOR_*``)."""

    service_name: Service = "quiz"
    generation_rounds: int = Field(default=3, ge=1, le=6)
    """Model calls at most per quiz: the first, then one per round that still falls short."""
    generation_rounds_with_source: int = Field(default=1, ge=0, le=6)
    """Model rounds when there is source text (context, lesson) to build the missing
    questions from: on the embedded model a later round gave no valid question and cost
    tens of seconds, the extracts none."""
    vision_model: bool = False
    """Whether the configured model reads images (``generate-from-image`` needs one)."""
    misconception_targets: int = Field(default=3, ge=0, le=10)
    """Newest open misconceptions a quiz aims at when the request names none."""
    reuse_stored: bool = True
    """Ask stored questions again when their calibrated difficulty suits the student (Elo)."""
    reuse_share: float = Field(default=0.5, ge=0, le=1)
    """Largest share of a quiz aimed at misconceptions that may be stored questions (the
    rest is written fresh, aimed at them); a quiz without targets may be all stored ones."""
