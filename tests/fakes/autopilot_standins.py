"""Stand-in tutor and quiz workers for the autopilot's tests: the kit's real worker (consumer,
inbox, outbox, relay) answering the real declarations (``tutor.lesson``, ``quiz.generate``,
``quiz.grade``, ``quiz.diagnose``) with one model call per lesson and per diagnosis, so a
test counts model calls on the scripted server and sees any that is repeated.

The stand-in quiz keeps its questions in the database (the answers in ``requests`` results
are never shown) and records mastery in ``learner_topics`` as the real quiz does: a topic
answered right in full reaches 100, so a run completes once its topics are mastered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from exammentor.contracts.autopilot import topic_key
from exammentor.contracts.quiz import (
    QUIZ_DIAGNOSE,
    QUIZ_GENERATE,
    QUIZ_GRADE,
    EvaluateAnswerRequest,
    EvaluationResult,
    GeneratedQuiz,
    GenerateQuizRequest,
    MisconceptionDiagnosis,
    MisconceptionRequest,
    QuestionView,
)
from exammentor.contracts.tutor import TUTOR_LESSON, Lesson, LessonRequest
from exammentor.db import Connection
from exammentor.messaging.consumer import CommandContext, CommandRejected, CommandRouter, Outcome
from exammentor.worker import WorkerResources

CORRECT_INDEX = 1
"""Every stand-in question's answer."""


def _question_id(request_id: object, number: int) -> str:
    return "q" + hashlib.sha256(f"{request_id}:{number}".encode()).hexdigest()[:12]


def install_tutor(router: CommandRouter, resources: WorkerResources[Any]) -> None:
    """``tutor.lesson``: one model call, its text as the lesson."""

    @router.handle(TUTOR_LESSON)
    async def lesson(ctx: CommandContext, request: LessonRequest) -> Outcome[Lesson]:
        text = await resources.llm.text(
            messages=[{"role": "user", "content": f"Teach {request.topic}: {request.focus}"}],
            purpose="tutor.lesson",
        )
        return Outcome(result=Lesson(markdown=text))


async def _stored_question(conn: Connection, question_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT topic, question FROM quiz_questions WHERE id = $1", question_id
    )
    return None if row is None else {"topic": row["topic"], **row["question"]}


def install_quiz(router: CommandRouter, resources: WorkerResources[Any]) -> None:
    """``quiz.generate`` (no model), ``quiz.grade`` (no model) and ``quiz.diagnose`` (one
    model call)."""

    @router.handle(QUIZ_GENERATE)
    async def generate(ctx: CommandContext, request: GenerateQuizRequest) -> Outcome[GeneratedQuiz]:
        questions = [
            QuestionView(
                id=_question_id(ctx.envelope.request_id, n),
                text=f"Question {n + 1} on {request.topic}?",
                options=["A", "B", "C", "D"],
                difficulty="medium" if request.difficulty == "adaptive" else request.difficulty,
                concept_tested=request.topic,
            )
            for n in range(request.num_questions)
        ]

        async def persist(conn: Connection) -> None:
            for q in questions:
                await conn.execute(
                    "INSERT INTO quiz_questions (user_id, id, quiz_id, topic, concept, question) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    ctx.user_id,
                    q.id,
                    ctx.envelope.request_id,
                    request.topic,
                    request.topic,
                    {**q.model_dump(mode="json"), "correct_option_index": CORRECT_INDEX},
                )

        quiz = GeneratedQuiz(topic=request.topic, questions=questions, time_estimate_minutes=3)
        return Outcome(result=quiz, persist=persist)

    @router.handle(QUIZ_GRADE)
    async def grade(
        ctx: CommandContext, request: EvaluateAnswerRequest
    ) -> Outcome[EvaluationResult]:
        async with ctx.transaction() as conn:
            found = await _stored_question(conn, request.question_id or "")
        if found is None:
            raise CommandRejected("question_not_found", f"no question {request.question_id}")
        skipped = request.student_answer_index is None
        correct = request.student_answer_index == CORRECT_INDEX
        outcome = "skipped" if skipped else "correct" if correct else "wrong"
        topic = found["topic"]

        async def persist(conn: Connection) -> None:
            # Mastery as the share of this topic's answers that were right, 0..100.
            await conn.execute(
                "INSERT INTO quiz_answers (id, user_id, question_id, request_id, topic, "
                "concept, outcome) VALUES (gen_random_uuid(), $1, $2, $3, $4, $4, $5)",
                ctx.user_id,
                request.question_id,
                ctx.envelope.request_id,
                topic,
                outcome,
            )
            score = await conn.fetchval(
                "SELECT 100.0 * count(*) FILTER (WHERE outcome = 'correct') / count(*) "
                "FROM quiz_answers WHERE topic = $1",
                topic,
            )
            await conn.execute(
                "INSERT INTO learner_topics (user_id, topic_key, topic, score, status, "
                "attempts, next_review) VALUES ($1, $2, $3, $4, 'learning', 1, $5) "
                "ON CONFLICT (user_id, topic_key) DO UPDATE SET score = EXCLUDED.score, "
                "attempts = learner_topics.attempts + 1, next_review = EXCLUDED.next_review",
                ctx.user_id,
                topic_key(topic),
                topic,
                float(score),
                dt.datetime.now(dt.UTC) + dt.timedelta(days=2),
            )

        result = EvaluationResult(
            is_correct=correct,
            feedback="right" if correct else "not quite",
            hint_for_similar="look again",
            outcome=outcome,
            correct_option_index=CORRECT_INDEX,
            correct_answer="B",
            explanation="B is right by definition.",
        )
        return Outcome(result=result, persist=persist)

    @router.handle(QUIZ_DIAGNOSE)
    async def diagnose(
        ctx: CommandContext, request: MisconceptionRequest
    ) -> Outcome[MisconceptionDiagnosis]:
        confusion = await resources.llm.text(
            messages=[{"role": "user", "content": f"Why {request.student_answer_index}?"}],
            purpose="quiz.diagnose",
        )
        return Outcome(
            result=MisconceptionDiagnosis(
                wrong_option_chosen=str(request.student_answer_index),
                inferred_confusion=confusion,
                counter_example="a counter-example",
                explanation="why",
                redemption_question=QuestionView(
                    id=f"r{request.question_id}",
                    text="Try again?",
                    options=["A", "B", "C", "D"],
                    concept_tested="x",
                ),
            )
        )
