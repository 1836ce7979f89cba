"""The topic the scheduler plans: a name with weight, hours, difficulty and prerequisites."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from exammentor.contracts.plan import Difficulty

DEFAULT_TOPIC_WEIGHT = 1.0
HEADING_SEPARATOR = ": "
"""Between a heading and an item listed under it in a planned topic's name."""
DEFAULT_TOPIC_HOURS = 2.0
"""Hours of a pasted topic the registry does not know, before its sub-topics are counted."""


class SyllabusTopic(BaseModel):
    """A topic to plan.

    ``prerequisites`` name other topics of the same syllabus; names that are not in the
    syllabus being planned are ignored by the scheduler and the verifier (they are out of
    scope, e.g. a topic of another sub-subject).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    weight: float = Field(default=DEFAULT_TOPIC_WEIGHT, gt=0, allow_inf_nan=False)
    """Relative importance; only ratios between topics matter."""
    hours: float = Field(default=DEFAULT_TOPIC_HOURS, gt=0, allow_inf_nan=False)
    """Learning hours the topic needs (the scheduler rounds up to a quarter hour)."""
    difficulty: Difficulty = "medium"
    prerequisites: tuple[str, ...] = ()
    subtopics: tuple[str, ...] = ()
    registry_name: str | None = None
    """The registry topic this one was matched to and enriched from, if any."""
    heading: str | None = None
    """The pasted heading this topic was listed under; its name starts with it
    (``"Arithmetic: Exponents and roots"``), so a plan shows both."""

    @property
    def item(self) -> str:
        """The name without its heading (``"Exponents and roots"``); the name if it has none."""
        prefix = f"{self.heading}{HEADING_SEPARATOR}" if self.heading else ""
        return self.name.removeprefix(prefix)
