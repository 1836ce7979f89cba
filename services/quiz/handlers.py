"""Commands the quiz service handles: generate (from text or an image), grade, diagnose,
analyse and save.

Thin, as in the planner: read what the command needs in the user's transaction, call the
workflow (model calls) and the pure domain (grading, the learner model, the misconception
lifecycle), and return the result with a persist step and the events. Rules kept here:

- the correct answer is never in a result before the student answered (questions are
  returned as views; ``quiz.grade`` reveals the answer of the question it graded);
- with a ``question_id`` the stored question is graded, whatever the body claims;
- a refusal writes nothing: every row is written by the persist step of an applied command.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from exammentor import sessions
from exammentor.contracts.commands import INVALID_REQUEST, SESSION_NOT_FOUND
from exammentor.contracts.envelope import EventEnvelope, utcnow
from exammentor.contracts.events import (
    AnswerGradedV1,
    MasteryChangedV1,
    MisconceptionDetectedV1,
    MisconceptionResolvedV1,
    QuizGeneratedV1,
)
from exammentor.contracts.quiz import (
    ANSWER_KIND,
    ANSWER_OUT_OF_RANGE,
    DIAGNOSIS_FAILED,
    NOT_WRONG,
    QUESTION_NOT_FOUND,
    QUIZ_ANALYZE,
    QUIZ_DIAGNOSE,
    QUIZ_GENERATE,
    QUIZ_GENERATE_FROM_IMAGE,
    QUIZ_GRADE,
    QUIZ_SAVE,
    QUIZ_UNAVAILABLE,
    VISION_UNSUPPORTED,
    AnalyzePerformanceRequest,
    AnsweredQuestionRequest,
    EvaluateAnswerRequest,
    EvaluationResult,
    GeneratedQuiz,
    GenerateQuizFromImageRequest,
    GenerateQuizRequest,
    MisconceptionDiagnosis,
    MisconceptionRequest,
    PerformanceAnalysis,
    Question,
    QuestionDifficulty,
    Quiz,
    SavedQuestion,
    SavedQuizRequest,
    SavedQuizView,
)
from exammentor.contracts.tutor import MATERIAL_UNKNOWN
from exammentor.db import Connection
from exammentor.messaging.consumer import CommandContext, CommandRejected, CommandRouter, Outcome
from exammentor.validation import validation_reason
from exammentor.worker import WorkerResources
from services.quiz import repo
from services.quiz.domain import (
    AnsweredQuestion,
    AnswerKindError,
    AnswerOutOfRangeError,
    AnswerRecord,
    BKTParams,
    Grade,
    MisconceptionRecord,
    SkillRating,
    SourceText,
    StudentAnswer,
    TransitionRefusedError,
    adaptive_difficulty,
    analyse_answers,
    answer_recheck,
    answer_redemption,
    card_from_record,
    card_to_record,
    concept_mastery,
    difficulty_label,
    grade_answer,
    initial_item_rating,
    misconception_targets,
    new_review_card,
    normalised,
    open_misconception,
    performance_analysis,
    question_id,
    questions_near_level,
    record_review,
    reopen_misconception,
    review_key,
    topic_mastery,
    update_ratings,
)
from services.quiz.settings import QuizSettings
from services.quiz.workflow import QuizWorkflow

MINUTES_PER_QUESTION = 1.5


def _answer_of(request: AnsweredQuestionRequest) -> StudentAnswer:
    if request.student_answer_text is not None and request.student_answer_text.strip():
        return request.student_answer_text
    return request.student_answer_index


def _grade(question: Question, answer: StudentAnswer) -> Grade:
    try:
        return grade_answer(question, answer)
    except AnswerOutOfRangeError as exc:
        raise CommandRejected(
            ANSWER_OUT_OF_RANGE.code,
            f"student_answer_index: {exc}",
            {"field": "student_answer_index", "options": len(question.options)},
        ) from exc
    except AnswerKindError as exc:
        raise CommandRejected(
            ANSWER_KIND.code, f"student_answer_index: {exc}", {"field": "student_answer_index"}
        ) from exc


def _body_question(request: AnsweredQuestionRequest, topic: str) -> Question:
    """The question the body describes (no ``question_id``), checked like a stored one."""
    try:
        return Question(
            id=question_id(topic, request.question),
            text=request.question,
            question_type=request.question_type,
            options=request.options,
            correct_option_index=request.correct_option_index,
            accepted_answers=request.accepted_answers,
            concept_tested=request.concept_tested or topic,
            explanation=request.explanation or "No explanation was given with the question.",
        )
    except ValidationError as exc:
        raise CommandRejected(
            INVALID_REQUEST.code, validation_reason(exc), {"field": "question"}
        ) from exc


async def _stored(conn: Connection, qid: str) -> repo.StoredQuestion:
    stored = await repo.stored_question(conn, qid)
    if stored is None:
        raise CommandRejected(
            QUESTION_NOT_FOUND.code,
            f"question_id: no question {qid!r} of yours",
            {"field": "question_id"},
        )
    return stored


def _params_for(params: dict[str, BKTParams], concept: str) -> dict[str, BKTParams]:
    chosen = params.get(repo.concept_key(concept), params.get("*"))
    return {concept: chosen} if chosen is not None else {}


# --- quiz.generate --------------------------------------------------------------------------


def _reused_questions(
    bank: list[repo.StoredQuestion],
    ability: SkillRating,
    count: int,
    label: QuestionDifficulty | None,
) -> list[Question]:
    """Stored questions to ask again, nearest the student's level first (Elo), each with
    the difficulty its answers have earned."""
    if not bank or count <= 0:
        return []
    by_id = {stored.question.id: stored for stored in bank}
    chosen = questions_near_level(
        {qid: stored.rating for qid, stored in by_id.items()}, ability, count, label=label
    )
    reused: list[Question] = []
    for qid in chosen:
        stored = by_id[qid]
        earned = difficulty_label(stored.rating) if stored.rating.answers else None
        reused.append(
            stored.question.model_copy(update={"difficulty": earned})
            if earned is not None
            else stored.question
        )
    return reused


def source_texts(
    request: GenerateQuizRequest | GenerateQuizFromImageRequest,
    pages: list[repo.MaterialPage] | None = None,
) -> list[SourceText]:
    """The texts questions may be built from when the model writes too few, most relevant
    first: the request's context, the pages of its stored material, the lesson just taught.

    Args:
        request: The generation request (an image request has none).
        pages: The pages of the request's ``material_ids``.

    Returns:
        The non-empty source texts.
    """
    if not isinstance(request, GenerateQuizRequest):
        return []
    found = [
        SourceText(request.context, "context"),
        *(
            SourceText(p.text, "material", material_id=str(p.material_id), page=p.page)
            for p in pages or []
        ),
        SourceText(request.lesson, "lesson"),
    ]
    return [source for source in found if source.text.strip()]


async def generate_quiz(
    ctx: CommandContext,
    request: GenerateQuizRequest | GenerateQuizFromImageRequest,
    workflow: QuizWorkflow,
    settings: QuizSettings,
) -> Outcome[GeneratedQuiz]:
    """``quiz.generate`` and ``quiz.generate_from_image`` v1.

    Args:
        ctx: The command's context.
        request: The request.
        workflow: The model calls.
        settings: The service's settings.

    Returns:
        The stored quiz without answers, its rows and ``quiz.generated``.

    Raises:
        CommandRejected: An unknown session, or no valid question at all.
    """
    image = isinstance(request, GenerateQuizFromImageRequest)
    if image and not settings.vision_model:
        raise CommandRejected(
            VISION_UNSUPPORTED.code,
            f"image_base64: the configured model {settings.llm.model!r} cannot read images; "
            "configure one that can (EXAMMENTOR_VISION_MODEL=true)",
            {"field": "image_base64"},
        )
    session_id = ctx.envelope.session_id
    async with ctx.transaction() as conn:
        if session_id is not None and not await sessions.session_exists(conn, session_id):
            raise CommandRejected(
                SESSION_NOT_FOUND.code, f"session_id: no study session {session_id}"
            )
        seen = await repo.recent_question_texts(conn, request.topic)
        p_topic = await repo.topic_p_mastery(conn, request.topic)
        records = await repo.misconception_records(conn, state="open")
        due = await repo.misconception_records(conn, state="redeemed")
        # Stored questions suit a quiz on the topic alone, not one about an image or about
        # material the student sent with this request.
        reusable = (
            settings.reuse_stored
            and not image
            and not getattr(request, "context", "")
            and not getattr(request, "material_ids", [])
        )
        bank = await repo.item_bank(conn, request.topic, seen) if reusable else []
        ability = await repo.topic_ability(conn, request.topic) if bank else SkillRating()
        wanted = list(getattr(request, "material_ids", []))
        pages = await repo.material_pages(conn, wanted) if wanted else []
    missing_material = [m for m in wanted if m not in {p.material_id for p in pages}]
    if missing_material:
        raise CommandRejected(
            MATERIAL_UNKNOWN.code,
            f"material_ids: no material {missing_material[0]} of yours with text",
            {"field": "material_ids"},
        )
    previous = getattr(request, "previous_mistakes", None)
    if previous is not None:
        targets = list(previous)
    else:
        now = utcnow()
        rechecks = [r.concept for r in due if r.recheck_due is not None and r.recheck_due <= now]
        newest = [
            r.description for r in misconception_targets(records, settings.misconception_targets)
        ]
        targets = [*rechecks, *newest][: max(settings.misconception_targets, len(rechecks))]
    difficulty: QuestionDifficulty = (
        adaptive_difficulty(p_topic) if request.difficulty == "adaptive" else request.difficulty
    )
    reused = _reused_questions(
        bank,
        ability,
        request.num_questions
        if not targets
        else math.floor(request.num_questions * settings.reuse_share),
        None if request.difficulty == "adaptive" else difficulty,
    )
    missing = request.num_questions - len(reused)
    sources = source_texts(request, pages)
    generated = (
        await workflow.questions(
            request.topic,
            count=missing,
            difficulty=difficulty,
            context="\n".join(s.text for s in sources),
            targets=targets,
            seen=[*seen, *(q.text for q in reused)],
            image=(request.image_base64, request.mime_type)
            if isinstance(request, GenerateQuizFromImageRequest)
            else None,
            sources=sources,
        )
        if missing
        else None
    )
    questions = [*reused, *(generated.questions if generated else [])]
    shortfall_reason = generated.shortfall_reason if generated else ""
    if not questions:
        raise CommandRejected(
            QUIZ_UNAVAILABLE.code,
            f"num_questions: no question could be made: {shortfall_reason}",
            {"field": "num_questions", "source_text": bool(sources)},
        )
    quiz_id = uuid4()
    quiz = Quiz(
        topic=request.topic,
        questions=questions,
        time_estimate_minutes=max(1, round(MINUTES_PER_QUESTION * len(questions))),
        requested_questions=request.num_questions,
        shortfall_reason=shortfall_reason,
    )
    view = quiz.student_view()
    result = GeneratedQuiz(
        **view.model_dump(), quiz_id=str(quiz_id), difficulty=difficulty, targets=targets
    )

    async def persist(conn: Connection) -> None:
        await repo.insert_questions(
            conn,
            quiz_id,
            request.topic,
            quiz.questions,
            [initial_item_rating(q.difficulty) for q in quiz.questions],
        )

    event = QuizGeneratedV1(
        quiz_id=quiz_id,
        topic=request.topic,
        questions_count=len(quiz.questions),
        requested_questions=request.num_questions,
        difficulty=difficulty,
        targets=targets,
        from_image=image,
    )
    return Outcome(result=result, persist=persist, events=[ctx.event(event)])


# --- quiz.grade ---------------------------------------------------------------------------


def _lifecycle(
    records: list[MisconceptionRecord],
    question_id_: str,
    grade: Grade,
    at: dt.datetime,
    answer_id: str,
) -> list[MisconceptionRecord]:
    """The concept's records that move with this answer (changed ones only)."""
    changed: list[MisconceptionRecord] = []
    if grade.observation is None:
        return changed
    for record in records:
        try:
            if record.state == "open" and record.redemption_question_id == question_id_:
                changed.append(answer_redemption(record, grade, at, answer_id=answer_id))
            elif record.state == "redeemed" and record.recheck_due is not None:
                if at >= record.recheck_due:
                    changed.append(answer_recheck(record, grade, at, answer_id=answer_id))
                elif not grade.observation:
                    changed.append(reopen_misconception(record, at, answer_id=answer_id))
            elif record.state == "resolved" and not grade.observation:
                changed.append(reopen_misconception(record, at, answer_id=answer_id))
        except TransitionRefusedError:
            continue
    return changed


async def grade(
    ctx: CommandContext, request: EvaluateAnswerRequest, workflow: QuizWorkflow
) -> Outcome[EvaluationResult]:
    """``quiz.grade`` v1: the verdict in code, words by the model, the learner model moved.

    Args:
        ctx: The command's context.
        request: The answer (with a ``question_id``, or the question's own fields).
        workflow: The model calls.

    Returns:
        The evaluation; for a stored question also the logged answer, the learner model's
        rows and the events.

    Raises:
        CommandRejected: An unknown question, or an answer the question cannot have.
    """
    answer = _answer_of(request)
    if request.question_id is None:
        question = _body_question(request, request.concept_tested or "quiz")
        verdict = _grade(question, answer)
        feedback, hint = await workflow.feedback(question, verdict, request.topic_context)
        return Outcome(result=_evaluation(question, verdict, feedback, hint))

    async with ctx.transaction() as conn:
        stored = await _stored(conn, request.question_id)
        question, topic = stored.question, stored.topic
        verdict = _grade(question, answer)
        log = await repo.topic_log(conn, topic)
        concept = await repo.concept_row(conn, question.concept_tested)
        params = await repo.fitted_params(conn)
        records = await repo.misconception_records(conn, concept=question.concept_tested)
        redemption_of = await repo.misconception_of_redemption(conn, question.id)
    if redemption_of is not None and redemption_of.id not in {r.id for r in records}:
        records.append(redemption_of)
    feedback, hint = await workflow.feedback(question, verdict, request.topic_context)

    at = utcnow()
    answer_id = uuid4()
    log.append(
        AnswerRecord(
            answer_id=str(answer_id),
            question_id=question.id,
            concept=question.concept_tested,
            topic=topic,
            outcome=verdict.outcome,
            answered_at=at,
        )
    )
    concept_params = {
        c: p for name in {r.concept for r in log} for c, p in _params_for(params, name).items()
    }
    concepts = concept_mastery(log, concept_params)
    topics = topic_mastery(concepts)
    key = repo.concept_key(question.concept_tested)
    estimate = next(c for c in concepts if repo.concept_key(c.concept) == key)
    topic_estimate = next(t for t in topics if normalised(t.topic) == normalised(topic))
    skill, item = update_ratings(concept.skill, stored.rating, verdict)
    card = (
        card_from_record(concept.review_card)
        if concept.review_card is not None
        else new_review_card(review_key(str(ctx.user_id), question.concept_tested), at)
    )
    if verdict.observation is not None:
        card = record_review(card, verdict, at)
    next_review = card.due if verdict.observation is not None or concept.review_card else None
    moved = _lifecycle(records, question.id, verdict, at, str(answer_id))

    async def persist(conn: Connection) -> None:
        await repo.insert_answer(
            conn,
            answer_id=answer_id,
            question_id=question.id,
            request_id=ctx.envelope.request_id,
            topic=topic,
            concept=question.concept_tested,
            answer=answer,
            outcome=verdict.outcome,
            at=at,
        )
        await repo.rate_item(conn, question.id, item)
        await repo.upsert_concept(
            conn,
            estimate,
            skill=skill,
            review_card=card_to_record(card) if next_review is not None else None,
            next_review=next_review,
            at=at,
        )
        await repo.upsert_topic(conn, topic_estimate, at)
        for record in moved:
            await repo.save_misconception(conn, record)

    events: list[EventEnvelope] = [
        ctx.event(
            AnswerGradedV1(
                answer_id=answer_id,
                question_id=question.id,
                topic=topic,
                concept=question.concept_tested,
                outcome=verdict.outcome,
            )
        )
    ]
    if verdict.observation is not None:
        events.append(
            ctx.event(
                MasteryChangedV1(
                    topic=topic,
                    concept=estimate.concept,
                    p_mastery_before=concept.p_mastery,
                    p_mastery=estimate.p_mastery,
                    status=estimate.status,
                    topic_score=topic_estimate.score,
                    topic_status=topic_estimate.status,
                    attempts=estimate.answered,
                    next_review=next_review,
                )
            )
        )
    for record in moved:
        if record.state == "resolved":
            events.append(
                ctx.event(
                    MisconceptionResolvedV1(
                        misconception_id=record.id,
                        topic=record.topic,
                        concept=record.concept,
                        reopened_times=record.reopened_times,
                    )
                )
            )
    result = _evaluation(question, verdict, feedback, hint)
    return Outcome(result=result, persist=persist, events=events)


def _evaluation(question: Question, verdict: Grade, feedback: str, hint: str) -> EvaluationResult:
    return EvaluationResult(
        is_correct=verdict.is_correct,
        feedback=feedback,
        misconception=None
        if verdict.outcome != "wrong"
        else f"Chose {verdict.chosen_text!r} instead of {verdict.correct_answer!r}",
        hint_for_similar=hint,
        outcome=verdict.outcome,
        correct_option_index=question.correct_option_index,
        correct_answer=question.correct_answer,
        explanation=question.explanation,
    )


# --- quiz.diagnose ------------------------------------------------------------------------


def _session_of(ctx: CommandContext, request: MisconceptionRequest) -> UUID | None:
    if ctx.envelope.session_id is not None:
        return ctx.envelope.session_id
    if request.session_id is None:
        return None
    try:
        return UUID(request.session_id)
    except ValueError as exc:
        raise CommandRejected(
            SESSION_NOT_FOUND.code,
            f"session_id: {request.session_id!r} is not a study session id",
            {"field": "session_id"},
        ) from exc


async def diagnose(
    ctx: CommandContext, request: MisconceptionRequest, workflow: QuizWorkflow
) -> Outcome[MisconceptionDiagnosis]:
    """``quiz.diagnose`` v1: a wrong answer's misconception, recorded open.

    Args:
        ctx: The command's context.
        request: The wrong answer.
        workflow: The model calls.

    Returns:
        The diagnosis with its redemption question (stored, without its answer), the record,
        the session's audit entry and ``misconception.detected``.

    Raises:
        CommandRejected: Unknown question or session, an answer that is not wrong, or no
            valid diagnosis from the model.
    """
    session_id = _session_of(ctx, request)
    async with ctx.transaction() as conn:
        if session_id is not None and not await sessions.session_exists(conn, session_id):
            raise CommandRejected(
                SESSION_NOT_FOUND.code,
                f"session_id: no study session {session_id}",
                {"field": "session_id"},
            )
        if request.question_id is not None:
            stored = await _stored(conn, request.question_id)
            question, topic = stored.question, stored.topic
        else:
            topic = request.concept_tested or "quiz"
            question = _body_question(request, topic)
    verdict = _grade(question, _answer_of(request))
    if verdict.outcome != "wrong":
        raise CommandRejected(
            NOT_WRONG.code,
            f"student_answer_index: the answer is {verdict.outcome}; only a wrong answer "
            "is diagnosed",
            {"field": "student_answer_index"},
        )
    diagnosis = await workflow.diagnosis(question, verdict, topic)
    if diagnosis is None:
        raise CommandRejected(
            DIAGNOSIS_FAILED.code,
            "the model gave no usable diagnosis with a valid redemption question; try again",
        )
    at = utcnow()
    redemption = diagnosis.redemption_question
    record = open_misconception(
        student_id=str(ctx.user_id),
        concept=question.concept_tested,
        topic=topic,
        description=diagnosis.inferred_confusion,
        wrong_option_chosen=verdict.chosen_text,
        question_id=question.id,
        redemption_question_id=redemption.id,
        at=at,
    )
    analysis = diagnosis.analysis(verdict)
    result = MisconceptionDiagnosis(
        wrong_option_chosen=analysis.wrong_option_chosen,
        inferred_confusion=analysis.inferred_confusion,
        counter_example=analysis.counter_example,
        explanation=analysis.explanation,
        redemption_question=redemption.student_view(),
        misconception_id=record.id,
        state=record.state,
    )
    stored_question = request.question_id is not None

    async def persist(conn: Connection) -> None:
        if not stored_question:
            await repo.insert_questions(
                conn, uuid4(), topic, [question], [initial_item_rating(question.difficulty)]
            )
        await repo.insert_questions(
            conn, uuid4(), topic, [redemption], [initial_item_rating(redemption.difficulty)]
        )
        await repo.save_misconception(
            conn, record, analysis.model_dump(mode="json", exclude={"redemption_question"})
        )
        await repo.insert_original_misconception(conn, uuid4(), record.description, at)
        if session_id is not None:
            phase = await sessions.session_state(conn, session_id)
            current = phase.phase if phase is not None else "INTAKE"
            await sessions.append_history(
                conn,
                session_id,
                "misconception_buster",
                from_phase=current,
                to_phase=current,
                data={
                    "misconception_id": record.id,
                    "concept": record.concept,
                    "question_id": question.id,
                    "wrong_option_chosen": verdict.chosen_text,
                    "inferred_confusion": diagnosis.inferred_confusion,
                    "redemption_question_id": redemption.id,
                },
            )

    event = MisconceptionDetectedV1(
        misconception_id=record.id,
        topic=topic,
        concept=record.concept,
        description=record.description,
        question_id=question.id,
        redemption_question_id=redemption.id,
    )
    return Outcome(result=result, persist=persist, events=[ctx.event(event)])


# --- quiz.analyze -------------------------------------------------------------------------


async def analyze(
    ctx: CommandContext, request: AnalyzePerformanceRequest, workflow: QuizWorkflow
) -> Outcome[PerformanceAnalysis]:
    """``quiz.analyze`` v1: every stored question's grade recomputed from the answer log.

    A client's ``is_correct`` counts only for a question the service does not have.

    Raises:
        CommandRejected: An unknown question id, or an answer its question cannot have.
    """
    answers: list[AnsweredQuestion] = []
    now = utcnow()
    async with ctx.transaction() as conn:
        params = await repo.fitted_params(conn)
        for n, item in enumerate(request.quiz_answers, start=1):
            if item.question_id is not None:
                stored = await _stored(conn, item.question_id)
                logged = await repo.last_answer(conn, item.question_id)
                if logged is not None:
                    given, at, answer_id = logged
                else:
                    given = item.student_answer_text or item.student_answer_index
                    at, answer_id = now, f"request-{n}"
                answers.append(
                    AnsweredQuestion(
                        answer_id=answer_id,
                        question=stored.question,
                        answer=given,
                        answered_at=at,
                        topic=stored.topic,
                    )
                )
                continue
            answers.append(_unstored(item, n, request.topic, now))
    try:
        fitted = {
            c: p
            for name in {a.question.concept_tested for a in answers}
            for c, p in _params_for(params, name).items()
        }
        figures = analyse_answers(answers, params=fitted)
    except (AnswerOutOfRangeError, AnswerKindError) as exc:
        code = (
            ANSWER_OUT_OF_RANGE.code if isinstance(exc, AnswerOutOfRangeError) else ANSWER_KIND.code
        )
        raise CommandRejected(code, f"quiz_answers: {exc}", {"field": "quiz_answers"}) from exc
    summary, encouragement = await workflow.analysis_prose(figures)
    return Outcome(
        result=performance_analysis(figures, summary=summary, encouragement=encouragement)
    )


def _unstored(item: Any, n: int, topic: str, at: dt.datetime) -> AnsweredQuestion:
    """An answer to a question the service does not have, graded by what the client says.

    Its verdict is the client's ``is_correct`` (or the indexes it sent), so it is written as
    a one-word blank question whose accepted answer is ``right``.
    """
    if item.is_correct is not None:
        right: bool | None = item.is_correct
    elif item.student_answer_index is None:
        right = None
    elif item.correct_option_index is not None:
        right = item.student_answer_index == item.correct_option_index
    else:
        right = None
    question = Question(
        id=f"unstored-{n}",
        text=item.question or f"Question {n}",
        question_type="fill_in_the_blank",
        concept_tested=item.concept_tested or topic,
        explanation="Graded by the client.",
        accepted_answers=["right"],
    )
    given: StudentAnswer = None if right is None else ("right" if right else "wrong")
    return AnsweredQuestion(
        answer_id=f"request-{n}", question=question, answer=given, answered_at=at, topic=topic
    )


# --- quiz.save ----------------------------------------------------------------------------


async def save(ctx: CommandContext, request: SavedQuizRequest) -> Outcome[SavedQuizView]:
    """``quiz.save`` v1: the latest quiz of a topic; its questions stored to be graded by id."""
    quiz_id = uuid4()
    questions = [
        q.model_copy(update={"id": question_id(request.topic_id, q.text)})
        for q in request.questions
    ]
    at = utcnow()
    result = SavedQuizView(
        user_id=str(ctx.user_id),
        topic_id=request.topic_id,
        questions=[SavedQuestion(**q.student_view().model_dump()) for q in questions],
        created_at=at,
    )

    async def persist(conn: Connection) -> None:
        await repo.insert_questions(
            conn,
            quiz_id,
            request.topic_id,
            questions,
            [initial_item_rating(q.difficulty) for q in questions],
        )
        await repo.save_quiz(conn, quiz_id, request.topic_id, questions)

    return Outcome(result=result, persist=persist)


def install_handlers(router: CommandRouter, resources: WorkerResources[QuizSettings]) -> None:
    """Registers the quiz service's handlers.

    Args:
        router: The quiz's router.
        resources: The worker's settings, pool, broker and model client.
    """
    settings = resources.settings
    workflow = QuizWorkflow(
        resources.llm,
        rounds=settings.generation_rounds,
        rounds_with_source=settings.generation_rounds_with_source,
    )

    @router.handle(QUIZ_GENERATE)
    async def _generate(
        ctx: CommandContext, request: GenerateQuizRequest
    ) -> Outcome[GeneratedQuiz]:
        return await generate_quiz(ctx, request, workflow, settings)

    @router.handle(QUIZ_GENERATE_FROM_IMAGE)
    async def _generate_from_image(
        ctx: CommandContext, request: GenerateQuizFromImageRequest
    ) -> Outcome[GeneratedQuiz]:
        return await generate_quiz(ctx, request, workflow, settings)

    @router.handle(QUIZ_GRADE)
    async def _grade_answer(
        ctx: CommandContext, request: EvaluateAnswerRequest
    ) -> Outcome[EvaluationResult]:
        return await grade(ctx, request, workflow)

    @router.handle(QUIZ_DIAGNOSE)
    async def _diagnose(
        ctx: CommandContext, request: MisconceptionRequest
    ) -> Outcome[MisconceptionDiagnosis]:
        return await diagnose(ctx, request, workflow)

    @router.handle(QUIZ_ANALYZE)
    async def _analyze(
        ctx: CommandContext, request: AnalyzePerformanceRequest
    ) -> Outcome[PerformanceAnalysis]:
        return await analyze(ctx, request, workflow)

    @router.handle(QUIZ_SAVE)
    async def _save(ctx: CommandContext, request: SavedQuizRequest) -> Outcome[SavedQuizView]:
        return await save(ctx, request)
