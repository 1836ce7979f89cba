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
        grading_timeout_seconds: Study time an answer received in its window waits for its
            grade (the quiz's ``quiz.grade``) before the run moves on without it (the
            question is then recorded skipped, with the answer, never graded). The answer
            window itself does not end a wait whose answer is being graded.
        quiz_estimate_seconds: What writing a quiz is taken to cost before this run has had
            one (after that, the mean of its recorded quizzes). A lesson's cost is always
            known when it counts: the rule is weighed after a lesson turn, from the mean of
            the run's lesson turns so far.
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
    grading_timeout_seconds: int = 300
    quiz_estimate_seconds: int = 60

    def __post_init__(self) -> None:
        if not 0 <= self.prerequisite_floor <= self.mastery_threshold <= 1:
            raise ValueError(
                f"need 0 <= prerequisite_floor ({self.prerequisite_floor}) <= "
                f"mastery_threshold ({self.mastery_threshold}) <= 1"
            )
        if min(self.lessons_per_topic, self.questions_per_quiz) < 1:
            raise ValueError("a topic needs at least one lesson and one question")
        timers = (self.answer_timeout_seconds, self.exam_horizon_days, self.grading_timeout_seconds)
        if min(timers) < 1:
            raise ValueError(
                "answer_timeout_seconds, grading_timeout_seconds and exam_horizon_days must be "
                "positive"
            )
        if self.quiz_estimate_seconds < 0:
            raise ValueError("quiz_estimate_seconds must be >= 0")
        if not 0 <= self.prior_mastery <= 1 or self.critical_topic_weight <= 0:
            raise ValueError("prior_mastery must be in 0..1 and critical_topic_weight positive")

    @property
    def answer_timeout_ms(self) -> int:
        """The answer wait in milliseconds."""
        return self.answer_timeout_seconds * 1000

    @property
    def grading_timeout_ms(self) -> int:
        """The wait for a received answer's grade in milliseconds."""
        return self.grading_timeout_seconds * 1000

    def room_for_lesson(self, *, left_ms: int, lesson_ms: int, quiz_ms: int) -> bool:
        """Whether a further lesson still leaves time for the topic's quiz to be answered.

        Args:
            left_ms: Study time left in the run.
            lesson_ms: What a lesson is expected to take.
            quiz_ms: What writing the quiz is expected to take.

        Returns:
            True when the lesson, the quiz and one answer window fit in ``left_ms``.
        """
        return lesson_ms + quiz_ms + self.answer_timeout_ms <= left_ms

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
