"""Every prompt the quiz service sends, the schema of each answer, and how each answer is read.

The model writes questions and words; it never decides whether an answer is right, never
computes a score and never sets a status. The embedded model is SmolLM2-135M, which copies
its input, repeats itself and ignores length limits, so:

- prompts are a few lines with one worked example; answers are small JSON objects with
  fixed short keys (``q1`` .. ``qN``, ``feedback``, ``hint`` ...) under a token cap;
- questions are written as multiple choice with the correct option *copied as text*
  (a small model copies text more reliably than it counts indexes); the domain's
  :func:`~services.quiz.domain.check_questions` repairs and checks each one, and only an
  answer that is mostly unusable is sent back for repair, with the reasons;
- every text kept is cleaned, clipped and refused when it loops; a screen that fails raises
  ``ValueError`` (the client's bounded repair loop) and the caller falls back to its own
  text (:func:`own_feedback`, the domain's analysis prose) when the model stays unusable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, create_model

from exammentor.contracts.quiz import (
    MisconceptionAnalysis,
    Question,
    QuestionDifficulty,
)
from exammentor.llm.answers import (
    ANSWER_CONFIG,
    JSON_ONLY,
    ask,
    check_mostly_usable,
    clean,
    clip,
    is_degenerate,
    token_budget,
)
from exammentor.llm.client import ChatMessage
from services.quiz.domain import (
    Grade,
    PerformanceFigures,
    QuestionCheck,
    QuestionDraft,
    check_questions,
    normalised,
)

QUESTION_TOKENS = 110
FEEDBACK_MAX_TOKENS = 120
DIAGNOSIS_MAX_TOKENS = 260
ANALYSIS_MAX_TOKENS = 140
"""Caps on generated tokens: the answers are small, and a weak model that runs on only
repeats itself."""

MAX_CONTEXT_PROMPT_CHARS = 1_200
"""Study material is cut to this in prompts; a small model's context is short."""
MAX_TARGETS = 3
"""Misconceptions named in a generation prompt."""
MAX_AVOID = 5
"""Recent question texts listed for the model to avoid (the check refuses repeats anyway)."""

_BRACES = re.compile(r"[{}\[\]<>]|```|\\n|https?://")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAIMS_RIGHT = re.compile(r"^(?:correct|right|well done|great job|yes|exactly)\b", re.IGNORECASE)


def _sentences(text: str, limit: int) -> str:
    """The first ``limit`` sentences of a cleaned text ('' when none is complete)."""
    parts = [s for s in _SENTENCE_END.split(clean(text)) if s.strip()]
    complete = [s for s in parts if s.rstrip().endswith((".", "!", "?"))]
    return " ".join(complete[:limit])


def _prose(text: str, field: str, *, sentences: int, words: tuple[int, int]) -> str:
    """A screened piece of prose, or ``ValueError`` naming the field and what to do."""
    kept = _sentences(text, sentences)
    if not kept:
        raise ValueError(f"{field}: write complete sentences ending with a full stop")
    if _BRACES.search(kept):
        raise ValueError(f"{field}: plain sentences only, no brackets, code or links")
    if is_degenerate(kept):
        raise ValueError(f"{field}: it repeats itself; say each thing once")
    count = len(kept.split())
    low, high = words
    if not low <= count <= high:
        raise ValueError(f"{field}: {count} words; write {low} to {high}")
    return kept


# --- Question generation -----------------------------------------------------------------


class QuestionItem(BaseModel):
    """One question as the model writes it."""

    model_config = ANSWER_CONFIG

    question: str
    # The grammar asks for four; validation does not, so one bad item does not sink the rest.
    options: list[str] = Field(json_schema_extra={"minItems": 4, "maxItems": 4})
    answer: str
    """The correct option, copied."""
    why: str
    concept: str

    def draft(self, difficulty: QuestionDifficulty) -> QuestionDraft:
        """The item in the domain's shape, for checking.

        Args:
            difficulty: The difficulty asked for.

        Returns:
            The draft.
        """
        return QuestionDraft(
            text=self.question,
            question_type="multiple_choice",
            options=self.options,
            answer=self.answer,
            explanation=self.why,
            concept=self.concept,
            difficulty=difficulty,
        )


class QuizAnswer(BaseModel):
    """Questions keyed ``q1``, ``q2`` ... (as many as asked for)."""

    model_config = ANSWER_CONFIG


def quiz_schema(count: int) -> type[QuizAnswer]:
    """A schema with exactly ``count`` required questions ``q1`` .. ``qN``.

    Args:
        count: Questions asked for.

    Returns:
        The answer schema.
    """
    fields: dict[str, Any] = {f"q{i}": (QuestionItem, ...) for i in range(1, count + 1)}
    return create_model("Quiz", __base__=QuizAnswer, **fields)


def quiz_max_tokens(count: int) -> int:
    """The generated-token cap of a quiz of ``count`` questions.

    Args:
        count: Questions asked for.

    Returns:
        The cap.
    """
    return token_budget(QUESTION_TOKENS, count)


_QUIZ_EXAMPLE = (
    "Topic: Units of measurement\nDifficulty: easy\nQuestions: 1",
    '{"q1": {"question": "What is the SI unit of force?", "options": ["newton", "joule", '
    '"watt", "pascal"], "answer": "newton", "why": "Force is mass times acceleration, '
    'measured in newtons.", "concept": "SI units"}}',
)


def quiz_messages(
    topic: str,
    *,
    count: int,
    difficulty: QuestionDifficulty,
    context: str = "",
    targets: Sequence[str] = (),
    avoid: Sequence[str] = (),
) -> list[ChatMessage]:
    """The question-generation prompt.

    Args:
        topic: The quiz topic.
        count: Questions to write.
        difficulty: easy, medium or hard (``adaptive`` is resolved before).
        context: The student's material ('' for none); cut to
            :data:`MAX_CONTEXT_PROMPT_CHARS`.
        targets: Misconceptions to aim at, newest first; the first :data:`MAX_TARGETS`
            are named.
        avoid: Texts of questions the student saw recently.

    Returns:
        The messages, with one worked example.
    """
    lines = [f"Topic: {clip(topic, 120)}", f"Difficulty: {difficulty}", f"Questions: {count}"]
    if targets:
        named = "; ".join(clip(t, 120) for t in targets[:MAX_TARGETS])
        lines.append(f"Test these mistakes the student made: {named}")
    if avoid:
        lines.append("Do not ask: " + "; ".join(clip(t, 80) for t in avoid[:MAX_AVOID]))
    if context.strip():
        lines.append(f"Material: {clip(context, MAX_CONTEXT_PROMPT_CHARS)}")
    return [
        {
            "role": "system",
            "content": "Write multiple-choice quiz questions. Each has four different options, "
            "exactly one correct; answer copies the correct option. why says in one sentence "
            "why it is correct. " + JSON_ONLY,
        },
        {"role": "user", "content": _QUIZ_EXAMPLE[0]},
        {"role": "assistant", "content": _QUIZ_EXAMPLE[1]},
        {"role": "user", "content": "\n".join(lines)},
    ]


def quiz_drafts(
    answer: QuizAnswer, count: int, difficulty: QuestionDifficulty
) -> list[QuestionDraft]:
    """The model's questions in the domain's shape, in key order.

    Args:
        answer: The model's answer.
        count: Questions asked for.
        difficulty: The difficulty asked for.

    Returns:
        One draft per key present.
    """
    drafts: list[QuestionDraft] = []
    for i in range(1, count + 1):
        item = getattr(answer, f"q{i}", None)
        if isinstance(item, QuestionItem):
            drafts.append(item.draft(difficulty))
    return drafts


def screen_quiz(
    answer: QuizAnswer,
    *,
    count: int,
    topic: str,
    difficulty: QuestionDifficulty,
    seen: Sequence[str] = (),
) -> QuestionCheck:
    """The checked questions of an answer, if most of them are usable.

    Args:
        answer: The model's answer.
        count: Questions asked for.
        topic: The quiz topic.
        difficulty: The difficulty asked for.
        seen: Texts of questions the student saw recently.

    Returns:
        The check (its ``short_by`` says how many are still missing).

    Raises:
        ValueError: Fewer than half are usable; the reasons, per question, for the repair.
    """
    check = check_questions(
        quiz_drafts(answer, count, difficulty),
        requested=count,
        topic=topic,
        difficulty=difficulty,
        seen=seen,
    )
    check_mostly_usable(check.problems(), len(check.questions), count)
    return check


# --- Feedback on a wrong answer ----------------------------------------------------------


class FeedbackAnswer(BaseModel):
    """Feedback on an answer and a hint for similar questions."""

    model_config = ANSWER_CONFIG

    feedback: str
    hint: str


def feedback_messages(
    question: Question, grade: Grade, topic_context: str = ""
) -> list[ChatMessage]:
    """The feedback prompt; the verdict is given, not asked.

    Args:
        question: The stored question.
        grade: The computed verdict.
        topic_context: What the quiz is about ('' for nothing more).

    Returns:
        The messages.
    """
    verdict = {
        "correct": "The student answered correctly.",
        "wrong": f"The student chose {clip(grade.chosen_text, 120)!r}, which is wrong.",
        "skipped": "The student did not answer.",
    }[grade.outcome]
    context = f"\nContext: {clip(topic_context, 300)}" if topic_context.strip() else ""
    return ask(
        "Give a student short feedback on a quiz answer: feedback in one or two sentences, "
        "then a hint for similar questions in one sentence. Do not change the verdict. "
        + JSON_ONLY,
        f"Question: {clip(question.text, 300)}\n"
        f"Correct answer: {clip(question.correct_answer, 120)}\n"
        f"Why: {clip(question.explanation, 300)}\n{verdict}{context}",
    )


def screen_feedback(answer: FeedbackAnswer, grade: Grade) -> tuple[str, str]:
    """The feedback and hint, if usable.

    Args:
        answer: The model's answer.
        grade: The computed verdict (the feedback may not contradict it).

    Returns:
        ``(feedback, hint)``.

    Raises:
        ValueError: Unusable, with the reason for the model to act on.
    """
    feedback = _prose(answer.feedback, "feedback", sentences=2, words=(4, 60))
    hint = _prose(answer.hint, "hint", sentences=1, words=(4, 40))
    if grade.outcome != "correct" and _CLAIMS_RIGHT.match(feedback):
        raise ValueError("feedback: the answer was not correct; do not say it was")
    if normalised(feedback) == normalised(hint):
        raise ValueError("hint: give a tip for similar questions, not the feedback again")
    return feedback, hint


def own_feedback(question: Question, grade: Grade) -> tuple[str, str]:
    """Feedback and hint written without a model, from the question's own explanation.

    Args:
        question: The stored question.
        grade: The computed verdict.

    Returns:
        ``(feedback, hint)``.
    """
    if grade.outcome == "correct":
        return f"Correct. {question.explanation}", f"Keep an eye on {question.concept_tested}."
    lead = "No answer was given." if grade.outcome == "skipped" else "Not quite."
    return (
        f"{lead} The answer is {question.correct_answer!r}. {question.explanation}",
        f"Revisit {question.concept_tested} before the next question on it.",
    )


# --- Misconception diagnosis -------------------------------------------------------------


class DiagnosisAnswer(BaseModel):
    """What the wrong answer suggests, a counter-example, and a redemption question."""

    model_config = ANSWER_CONFIG

    confusion: str
    counter_example: str
    explanation: str
    redemption: QuestionItem


_DIAGNOSIS_EXAMPLE = (
    "Question: What is the SI unit of force?\nCorrect answer: newton\nStudent chose: joule\n"
    "Concept: SI units",
    '{"confusion": "Mixes up force with energy.", "counter_example": "Holding a book still '
    'takes force but does no work, so no joules are spent on it.", "explanation": "Force is '
    'measured in newtons; energy and work in joules.", "redemption": {"question": "Which unit '
    'measures energy?", "options": ["joule", "newton", "watt", "pascal"], "answer": "joule", '
    '"why": "Energy and work are measured in joules.", "concept": "SI units"}}',
)


def diagnosis_messages(question: Question, grade: Grade) -> list[ChatMessage]:
    """The misconception prompt for a wrong answer.

    Args:
        question: The stored question.
        grade: The computed verdict (wrong).

    Returns:
        The messages, with one worked example.
    """
    return [
        {
            "role": "system",
            "content": "A student answered a quiz question wrongly. Say in one sentence what "
            "they confused, give a counter-example that shows the mistake, explain the right "
            "idea, and write one new multiple-choice question on the same point. " + JSON_ONLY,
        },
        {"role": "user", "content": _DIAGNOSIS_EXAMPLE[0]},
        {"role": "assistant", "content": _DIAGNOSIS_EXAMPLE[1]},
        {
            "role": "user",
            "content": f"Question: {clip(question.text, 300)}\n"
            f"Correct answer: {clip(question.correct_answer, 120)}\n"
            f"Student chose: {clip(grade.chosen_text, 120)}\n"
            f"Concept: {clip(question.concept_tested, 120)}",
        },
    ]


@dataclass(frozen=True)
class Diagnosis:
    """A screened diagnosis with its checked redemption question."""

    inferred_confusion: str
    counter_example: str
    explanation: str
    redemption_question: Question

    def analysis(self, grade: Grade) -> MisconceptionAnalysis:
        """The original's ``MisconceptionAnalysis``.

        Args:
            grade: The wrong answer's verdict.

        Returns:
            The analysis.
        """
        return MisconceptionAnalysis(
            wrong_option_chosen=grade.chosen_text,
            inferred_confusion=self.inferred_confusion,
            counter_example=self.counter_example,
            explanation=self.explanation,
            redemption_question=self.redemption_question,
        )


def screen_diagnosis(answer: DiagnosisAnswer, question: Question, topic: str) -> Diagnosis:
    """The diagnosis, if every part is usable and the redemption question passes the check.

    Args:
        answer: The model's answer.
        question: The question answered wrongly (the redemption must be a different one).
        topic: The quiz topic.

    Returns:
        The diagnosis; the redemption question tests the original's concept.

    Raises:
        ValueError: A part is unusable, with the reasons for the model to act on.
    """
    confusion = _prose(answer.confusion, "confusion", sentences=1, words=(3, 40))
    counter = _prose(answer.counter_example, "counter_example", sentences=2, words=(5, 60))
    explanation = _prose(answer.explanation, "explanation", sentences=2, words=(4, 60))
    draft = answer.redemption.draft(question.difficulty)
    # The redemption question is about the same point, whatever concept the model named.
    draft = draft.model_copy(update={"concept": question.concept_tested})
    check = check_questions(
        [draft], requested=1, topic=topic, difficulty=question.difficulty, seen=[question.text]
    )
    if not check.questions:
        raise ValueError(
            "; ".join(p.replace("q1:", "redemption:", 1) for p in check.problems())
            or "redemption: write a new question"
        )
    return Diagnosis(
        inferred_confusion=confusion,
        counter_example=counter,
        explanation=explanation,
        redemption_question=check.questions[0],
    )


# --- Performance analysis prose ----------------------------------------------------------


class AnalysisProseAnswer(BaseModel):
    """The words around a computed performance analysis."""

    model_config = ANSWER_CONFIG

    summary: str
    encouragement: str


def analysis_numbers(figures: PerformanceFigures) -> frozenset[float]:
    """The numbers the analysis prose may quote.

    Args:
        figures: The computed figures.

    Returns:
        Counts, the overall score and the topic scores.
    """
    values = {
        float(figures.answered),
        float(figures.correct),
        float(figures.skipped),
        float(figures.answered - figures.correct - figures.skipped),
        figures.overall_score,
        100.0,  # "85 out of 100"
    }
    values.update(topic.score for topic in figures.topics)
    return frozenset(values)


def analysis_messages(figures: PerformanceFigures) -> list[ChatMessage]:
    """The analysis-prose prompt: the figures are given, only words are asked for.

    Args:
        figures: The computed figures.

    Returns:
        The messages.
    """
    topics = "; ".join(
        f"{clip(t.topic, 60)} {t.score:g}/100 ({t.status})" for t in figures.topics[:6]
    )
    return ask(
        "Write a two-sentence summary of a student's quiz results and one encouraging "
        "sentence. Use only the numbers given. " + JSON_ONLY,
        f"Right: {figures.correct} of {figures.answered}; skipped: {figures.skipped}; "
        f"score: {figures.overall_score:g}\nTopics: {topics or 'none'}",
    )


def screen_analysis(answer: AnalysisProseAnswer, figures: PerformanceFigures) -> tuple[str, str]:
    """The summary and encouragement, if usable.

    Args:
        answer: The model's answer.
        figures: The computed figures; the prose may quote no other number.

    Returns:
        ``(summary, encouragement)``.

    Raises:
        ValueError: Unusable, with the reason for the model to act on.
    """
    summary = _prose(answer.summary, "summary", sentences=2, words=(6, 70))
    encouragement = _prose(answer.encouragement, "encouragement", sentences=1, words=(3, 35))
    allowed = analysis_numbers(figures)
    for field, text in (("summary", summary), ("encouragement", encouragement)):
        stray = [n for n in _NUMBER.findall(text) if float(n) not in allowed]
        if stray:
            raise ValueError(
                f"{field}: the numbers {', '.join(stray)} are not in the results; use only "
                f"{', '.join(f'{n:g}' for n in sorted(allowed))}"
            )
    return summary, encouragement
