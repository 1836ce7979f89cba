"""The quiz service's model calls: questions, feedback, diagnoses and analysis prose.

Every decision is the pure domain's (``services.quiz.domain``), every prompt and screen is
in ``prompts``; neither the database nor Kafka is touched here. The model writes questions
and words only: a quiz is the questions that passed the domain's check, asked for again
(only the missing ones) for at most ``generation_rounds`` rounds; feedback, hints and prose
fall back to text of our own when the model's does not pass its screen.

Rounds differ: round ``n`` samples with ``Sampling.for_round(n)`` (temperature above 0, a new
seed, repetition penalties), because the embedded model at temperature 0 answers the same
prompt with the same invalid JSON. Questions still missing after the rounds are built from
the source text at hand (:func:`~services.quiz.domain.extract_questions`: the student's
material, the request's context, the lesson just taught). With source text the model gets
``rounds_with_source`` rounds only: measured on the embedded model, later rounds gave no
valid question and cost tens of seconds each, while the extracts are checked and instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exammentor.contracts.quiz import (
    MULTIPLE_CHOICE_OPTIONS,
    Question,
    QuestionDifficulty,
)
from exammentor.llm.answers import ModelRun
from exammentor.llm.client import LLMClient
from exammentor.llm.messages import LLMError, Message, PartsMessage
from exammentor.llm.sampling import Sampling
from exammentor.logs import get_logger
from services.quiz import prompts
from services.quiz.domain import (
    Grade,
    PerformanceFigures,
    SourceText,
    check_questions,
    extract_questions,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class GeneratedQuestions:
    """Checked questions, and why there are fewer than asked when there are.

    Attributes:
        questions: The model's checked questions first, then the extracts.
        requested: Questions asked for.
        shortfall_reason: Why fewer came ('' when all did).
        from_model: How many of ``questions`` the model wrote.
        model_problems: Why the model's rounds fell short ('' when they did not).
    """

    questions: list[Question]
    requested: int
    shortfall_reason: str = ""
    from_model: int = 0
    model_problems: str = ""

    @property
    def extracted(self) -> int:
        """How many questions were built from the source text."""
        return len(self.questions) - self.from_model


def _image_messages(
    messages: Sequence[Message], image_base64: str, mime_type: str
) -> list[Message]:
    """The generation prompt with the image attached to its last user turn."""
    *head, last = messages
    text = str(last["content"]) + "\nWrite the questions about the image."
    parts: PartsMessage = {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {
                "type": "image_url",
                "image_url": {
                    "url": f"data:{mime_type};base64,{''.join(image_base64.split())}",
                    "detail": "auto",
                },
            },
        ],
    }
    return [*head, parts]


class QuizWorkflow:
    """The model calls of the quiz service."""

    def __init__(
        self, llm: LLMClient | None, *, rounds: int, rounds_with_source: int | None = None
    ) -> None:
        self.llm = llm
        self.rounds = rounds
        self.rounds_with_source = rounds if rounds_with_source is None else rounds_with_source

    async def questions(
        self,
        topic: str,
        *,
        count: int,
        difficulty: QuestionDifficulty,
        context: str = "",
        targets: Sequence[str] = (),
        seen: Sequence[str] = (),
        image: tuple[str, str] | None = None,
        sources: Sequence[SourceText] = (),
    ) -> GeneratedQuestions:
        """Up to ``count`` checked questions on ``topic``: the model's, then extracts.

        Args:
            topic: The quiz topic.
            count: Questions asked for.
            difficulty: The difficulty to write for.
            context: The student's material.
            targets: Misconceptions to aim at, newest first.
            seen: Texts of questions the student saw recently (not asked again).
            image: ``(image_base64, mime_type)`` for a quiz about an image.
            sources: Texts to build the questions the model could not write from.

        Returns:
            The questions (possibly fewer than ``count``, with the reason).
        """
        run = ModelRun(self.llm)
        kept: list[Question] = []
        reasons: list[str] = []
        has_source = any(source.text.strip() for source in sources)
        rounds = self.rounds_with_source if has_source else self.rounds
        for round_no in range(1, rounds + 1):
            missing = count - len(kept)
            if missing <= 0:
                break
            already = [*seen, *(q.text for q in kept)]
            messages = prompts.quiz_messages(
                topic,
                count=missing,
                difficulty=difficulty,
                context=context,
                targets=targets,
                avoid=already,
            )
            schema = prompts.quiz_schema(missing)

            def screen(
                answer: prompts.QuizAnswer, n: int = missing, avoid: list[str] = already
            ) -> None:
                prompts.screen_quiz(answer, count=n, topic=topic, difficulty=difficulty, seen=avoid)

            answer: prompts.QuizAnswer | None
            if image is None:
                # With source text at hand an answer is not sent back for repair (a repair
                # call costs more than the first and, on the embedded model, gave garbage
                # every time measured): its valid questions are kept and the extracts fill
                # the rest.
                # An answer that matches the schema but fails the screen is still taken:
                # check_questions below keeps its valid questions one by one.
                answer = await run.ask(
                    "quiz.generate",
                    messages,
                    schema,
                    max_tokens=prompts.quiz_max_tokens(missing),
                    sampling=Sampling().for_round(round_no),
                    validate=None if has_source else screen,
                    repairs=0 if has_source else None,
                    keep_unchecked=True,
                )
            else:
                answer = await self._ask_about_image(messages, schema, missing, image, screen)
            if answer is None:
                reasons.append(
                    f"round {round_no}: the model's answer was "
                    f"{run.status.get('quiz.generate', 'unusable')}"
                )
                if run.down:
                    break
                continue
            check = check_questions(
                prompts.quiz_drafts(answer, missing, difficulty),
                requested=missing,
                topic=topic,
                difficulty=difficulty,
                seen=already,
            )
            if image is not None:
                kept.extend(
                    q.model_copy(update={"visual_reference": "the image"}) for q in check.questions
                )
            else:
                kept.extend(check.questions)
            reasons.extend(check.problems())
        kept = kept[:count]
        model_problems = ""
        if len(kept) < count:
            model_problems = (
                f"{len(kept)} of {count} questions from the model passed the check within "
                f"{rounds} round(s) ({MULTIPLE_CHOICE_OPTIONS} distinct options, one correct, "
                f"distinct new texts): " + "; ".join(reasons[:6])
            )
        from_model = len(kept)
        if len(kept) < count and has_source:
            extracts = extract_questions(
                sources,
                topic=topic,
                count=count - len(kept),
                difficulty=difficulty,
                seen=[*seen, *(q.text for q in kept)],
            )
            kept.extend(item.question for item in extracts)
            log.info(
                "quiz: questions built from the source text",
                extracted=len(extracts),
                from_model=from_model,
                requested=count,
            )
        shortfall = ""
        if len(kept) < count:
            shortfall = model_problems
            if has_source:
                shortfall += (
                    f"; {len(kept) - from_model} more built from the source text "
                    f"({', '.join(sorted({s.kind for s in sources if s.text.strip()}))}), "
                    "which has no further sentence to ask about"
                )
            else:
                shortfall += (
                    "; no source text to build questions from (send context, or quiz "
                    "after a lesson)"
                )
        return GeneratedQuestions(kept, count, shortfall, from_model, model_problems)

    async def _ask_about_image(
        self,
        messages: Sequence[Message],
        schema: type[prompts.QuizAnswer],
        missing: int,
        image: tuple[str, str],
        screen: object,
    ) -> prompts.QuizAnswer | None:
        if self.llm is None:
            return None
        try:
            return await self.llm.structured(
                messages=_image_messages(messages, *image),
                schema=schema,
                purpose="quiz.generate_from_image",
                max_tokens=prompts.quiz_max_tokens(missing),
                validate=screen,  # type: ignore[arg-type]
            )
        except LLMError as exc:
            log.info("image quiz: model answer unusable", reason=exc.reason)
            return None

    async def feedback(
        self, question: Question, grade: Grade, topic_context: str = ""
    ) -> tuple[str, str]:
        """Feedback and a hint: the model's for a wrong or skipped answer when they pass."""
        if grade.outcome == "correct":
            return prompts.own_feedback(question, grade)
        run = ModelRun(self.llm)

        def screen(answer: prompts.FeedbackAnswer) -> None:
            prompts.screen_feedback(answer, grade)

        answer = await run.ask(
            "quiz.feedback",
            prompts.feedback_messages(question, grade, topic_context),
            prompts.FeedbackAnswer,
            max_tokens=prompts.FEEDBACK_MAX_TOKENS,
            validate=screen,
        )
        if answer is None:
            return prompts.own_feedback(question, grade)
        return prompts.screen_feedback(answer, grade)

    async def diagnosis(
        self, question: Question, grade: Grade, topic: str
    ) -> prompts.Diagnosis | None:
        """A screened diagnosis with a checked redemption question, or None."""
        run = ModelRun(self.llm)

        def screen(answer: prompts.DiagnosisAnswer) -> None:
            prompts.screen_diagnosis(answer, question, topic)

        answer = await run.ask(
            "quiz.diagnose",
            prompts.diagnosis_messages(question, grade),
            prompts.DiagnosisAnswer,
            max_tokens=prompts.DIAGNOSIS_MAX_TOKENS,
            validate=screen,
        )
        return prompts.screen_diagnosis(answer, question, topic) if answer is not None else None

    async def analysis_prose(self, figures: PerformanceFigures) -> tuple[str | None, str | None]:
        """The model's summary and encouragement when they pass, else ``(None, None)``."""
        run = ModelRun(self.llm)

        def screen(answer: prompts.AnalysisProseAnswer) -> None:
            prompts.screen_analysis(answer, figures)

        answer = await run.ask(
            "quiz.analysis",
            prompts.analysis_messages(figures),
            prompts.AnalysisProseAnswer,
            max_tokens=prompts.ANALYSIS_MAX_TOKENS,
            validate=screen,
        )
        if answer is None:
            return None, None
        return prompts.screen_analysis(answer, figures)
