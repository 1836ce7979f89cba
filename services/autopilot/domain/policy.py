"""The autopilot's rules in one place; a run keeps the rules it started with."""

from __future__ import annotations

from dataclasses import dataclass

from exammentor.contracts.autopilot import Difficulty


@dataclass(frozen=True)
class AutopilotPolicy:
    """Tunable rules of the autopilot; the defaults are the original's loop, made exact.

    A run stores the policy it started with, so a replica with other settings that carries
    the run on after a crash keeps its timeouts and thresholds.

    Attributes:
        lessons_per_topic: Micro-lessons taught before each quiz.
        questions_per_quiz: Questions asked per quiz.
        answer_timeout_seconds: Study time a question waits before it counts as skipped.
        mastery_threshold: A topic at or above this mastery is done.
        prerequisite_floor: A topic waits until each of its prerequisites (direct or not)
            reaches this mastery. At most ``mastery_threshold``, so a prerequisite that holds
            a topic back is never done and some topic is always ready.
        prior_mastery: Mastery of a topic the learner model has no estimate for.
        critical_topic_weight: Weight of the plan's critical topics (others weigh 1) when no
            weights are given.
        exam_horizon_days: From this many days before the exam, weight counts more the nearer
            the exam is: the need of a topic is ``(1 - mastery) * weight ** (1 + nearness)``
            with ``nearness`` from 0 (this far or farther) to 1 (exam day).
        difficulty_bands: ``(mastery below, difficulty)`` steps for the quiz; above the last
            step questions are ``hard``.
        misconceptions_per_quiz: How many of the topic's newest open misconceptions a quiz
            aims at.
    """

    lessons_per_topic: int = 2
    questions_per_quiz: int = 3
    answer_timeout_seconds: int = 60
    mastery_threshold: float = 0.85
    prerequisite_floor: float = 0.6
    prior_mastery: float = 0.0
    critical_topic_weight: float = 2.0
    exam_horizon_days: int = 60
    difficulty_bands: tuple[tuple[float, Difficulty], ...] = ((0.4, "easy"), (0.7, "medium"))
    misconceptions_per_quiz: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.prerequisite_floor <= self.mastery_threshold <= 1:
            raise ValueError(
                f"need 0 <= prerequisite_floor ({self.prerequisite_floor}) <= "
                f"mastery_threshold ({self.mastery_threshold}) <= 1"
            )
        if min(self.lessons_per_topic, self.questions_per_quiz) < 1:
            raise ValueError("a topic needs at least one lesson and one question")
        if self.answer_timeout_seconds < 1 or self.exam_horizon_days < 1:
            raise ValueError("answer_timeout_seconds and exam_horizon_days must be positive")
        if not 0 <= self.prior_mastery <= 1 or self.critical_topic_weight <= 0:
            raise ValueError("prior_mastery must be in 0..1 and critical_topic_weight positive")

    @property
    def answer_timeout_ms(self) -> int:
        """The answer wait in milliseconds."""
        return self.answer_timeout_seconds * 1000

    def difficulty_for(self, mastery: float) -> Difficulty:
        """The quiz difficulty for a topic at ``mastery``.

        Args:
            mastery: The learner model's mastery of the topic, 0 to 1.

        Returns:
            The difficulty of the first band whose bound the mastery is below, else ``hard``.
        """
        for bound, difficulty in self.difficulty_bands:
            if mastery < bound:
                return difficulty
        return "hard"


DEFAULT_POLICY = AutopilotPolicy()
