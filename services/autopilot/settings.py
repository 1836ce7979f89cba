"""Autopilot service settings."""

from __future__ import annotations

from pydantic import Field

from exammentor.contracts.kafka_topics import Service
from exammentor.settings import WorkerSettings


class AutopilotSettings(WorkerSettings):
    """What the autopilot service reads from the environment (``EXAMMENTOR_*``).

    The autopilot sends commands to the tutor and the quiz, so its worker runs a result
    relay of its own (``relay_*``, as the gateway's), where they stream their answers.
    """

    service_name: Service = "autopilot"
    relay_host: str = "127.0.0.1"
    relay_port: int = 0
    """Port of this replica's result relay (0 picks a free one)."""
    relay_advertise: str | None = None
    """``host:port`` the tutor and quiz reach the relay at, when not ``relay_host:port``."""
    replica_name: str = ""
    """Names this replica as a lease owner (default: host, process and a random suffix)."""
    lease_ttl_s: float = Field(default=10.0, gt=0)
    """A run whose driver stops renewing its lease for this long is taken over."""
    lease_poll_s: float = Field(default=1.0, gt=0)
    """How often the driver renews its leases and looks for runs to take over."""
    max_sessions: int = Field(default=200, ge=1)
    """Runs one replica drives at once; more wait for another replica or a free slot."""
    answer_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    """Study time a question waits for its answer before it counts as skipped."""
    grading_timeout_seconds: int = Field(default=300, ge=1, le=3600)
    """Study time an answer given in time waits for its grade before the question is
    recorded skipped (ungraded) and the run moves on."""
    quiz_estimate_seconds: int = Field(default=60, ge=0, le=3600)
    """What a quiz is taken to cost before a run has had one (for the lesson-or-quiz rule)."""
    lessons_per_topic: int = Field(default=2, ge=1, le=10)
    questions_per_quiz: int = Field(default=3, ge=1, le=20)
    call_timeout_s: float = Field(default=300.0, gt=0)
    """Longest wait for one tutor or quiz command before it is re-sent (same ids)."""
    lesson_words: int = Field(default=300, ge=50, le=1500)
