"""Quiz and learner-model contracts: the original system's shapes plus ExamMentor's extensions.

Field names of the original (``Question``, ``Quiz``, the evaluate result,
``PerformanceAnalysis``, ``MisconceptionAnalysis`` and the route bodies) are kept as they
were, so its clients keep working. Extension fields always have defaults.

Rules the shapes keep:

- A :class:`Question` is internally consistent: a multiple-choice question has exactly
  :data:`MULTIPLE_CHOICE_OPTIONS` options and its ``correct_option_index`` is one of them; a
  true/false question has the options ``True`` and ``False``; a fill-in-the-blank question
  has no options, no index and at least one accepted answer. Whether it is a *good* question
  (distinct options, the question not repeated as an option ...) is the quiz domain's check.
- The student sees a :class:`QuestionView`: the answer, its explanation and the accepted
  answers are left out until the student has answered (the original sent
  ``correct_option_index`` with every question and let clients grade themselves).
- Request bodies carry their bounds, so bad input fails validation naming the field (the
  gateway answers 422): ``num_questions`` in ``MIN_QUESTIONS..MAX_QUESTIONS``, a known
  difficulty, a non-empty topic, an answer index that is not negative.

Only pydantic, the standard library, the contracts' own command declarations and the
tutor's material declarations (a quiz may be built from stored material) are imported:
gateway and services share this module.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from exammentor.contracts.commands import (
    INVALID_REQUEST,
    NOT_FOUND,
    SESSION_NOT_FOUND,
    Command,
    ErrorCode,
)
from exammentor.contracts.tutor import MATERIAL_UNKNOWN, MAX_MATERIAL_IDS

QuestionType = Literal["multiple_choice", "true_false", "fill_in_the_blank"]
QuestionDifficulty = Literal["easy", "medium", "hard"]
RequestedDifficulty = Literal["easy", "medium", "hard", "adaptive"]
"""``adaptive`` (the default) lets the learner model choose from the student's mastery."""
MasteryStatus = Literal["mastered", "learning", "weak", "pending"]
"""``pending``: no answers yet; the others follow from the mastery estimate."""
AnswerOutcome = Literal["correct", "wrong", "skipped"]
"""``skipped``: no answer given (a timeout included); never one of the options."""
MisconceptionState = Literal["open", "redeemed", "resolved"]
"""``open``: detected or reopened; ``redeemed``: the redemption question was answered right
and a re-check is due later; ``resolved``: the re-check was answered right too."""
ImageMimeType = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]
QuestionSource = Literal["model", "extract"]
"""``model``: written by the model and checked; ``extract``: built in code from a sentence of
the source text (the student's material, the request's context or the lesson just taught)."""
ExtractSource = Literal["material", "context", "lesson"]
"""Which source text an extracted question was built from."""

MULTIPLE_CHOICE_OPTIONS = 4
TRUE_FALSE_OPTIONS = ("True", "False")
MIN_QUESTIONS = 1
MAX_QUESTIONS = 20
DEFAULT_QUESTIONS = 5
MAX_TOPIC_CHARS = 200
MAX_CONTEXT_CHARS = 12_000
"""Study material is cut to this before prompting anyway (the original's PDF limit)."""
MAX_TEXT_CHARS = 2_000
"""Longest question text, option, explanation or answer accepted from a client."""
MAX_IMAGE_BASE64_CHARS = 14_000_000
"""About 10 MB of image."""
MAX_PREVIOUS_MISTAKES = 20
MAX_ANSWERS_ANALYSED = 200


def _storable(value: str) -> str:
    """Refuse text PostgreSQL cannot hold (NUL) or that is not valid UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("text_not_utf8", "text is not valid UTF-8") from None
    if "\x00" in value:
        raise PydanticCustomError("text_has_nul", "text contains NUL characters")
    return value


def _filled(value: str) -> str:
    """Refuse blank text; surrounding whitespace is dropped."""
    value = _storable(value).strip()
    if not value:
        raise PydanticCustomError("text_empty", "must not be empty or only whitespace")
    return value


Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_storable)]
FilledText = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_filled)]
TopicName = Annotated[str, Field(max_length=MAX_TOPIC_CHARS), AfterValidator(_filled)]
Context = Annotated[str, Field(max_length=MAX_CONTEXT_CHARS), AfterValidator(_storable)]
AnswerIndex = Annotated[int, Field(ge=0, strict=True)]
"""0-based; strict so that ``true`` or ``"1"`` is not taken for an index."""
Identifier = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_filled)]


# --- Questions and quizzes ---------------------------------------------------------------


class QuestionView(BaseModel):
    """A question as the student sees it before answering: no answer, no explanation."""

    id: Identifier
    text: FilledText
    question_type: QuestionType = "multiple_choice"
    options: list[FilledText] = Field(default_factory=list)
    difficulty: QuestionDifficulty = "medium"
    concept_tested: FilledText
    visual_reference: str | None = None
    """For a quiz made from an image: the part of the image the question is about."""
    source: QuestionSource = "model"
    """Who wrote the question: the model, or code from the source text (an extract)."""
    extracted_from: ExtractSource | None = None
    """For an extract: the text it was built from."""
    material_id: str | None = None
    """For an extract from stored material: the material's id."""
    page: int | None = Field(default=None, ge=1)
    """For an extract: the page of its sentence, where known."""


class Question(QuestionView):
    """A question with its answer (the original's ``Question`` plus fill-in-the-blank)."""

    correct_option_index: AnswerIndex | None = None
    """0-based index into ``options``; ``None`` only for fill-in-the-blank."""
    explanation: FilledText
    accepted_answers: list[FilledText] = Field(default_factory=list)
    """Fill-in-the-blank: the answers graded correct, the first is the one shown."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.question_type == "fill_in_the_blank":
            if self.options or self.correct_option_index is not None:
                raise PydanticCustomError(
                    "blank_has_options",
                    "a fill_in_the_blank question has no options and no correct_option_index",
                )
            if not self.accepted_answers:
                raise PydanticCustomError(
                    "blank_without_answer",
                    "accepted_answers: a fill_in_the_blank question needs at least one",
                )
            return self
        if self.question_type == "true_false" and tuple(self.options) != TRUE_FALSE_OPTIONS:
            raise PydanticCustomError(
                "true_false_options", "options of a true_false question are ['True', 'False']"
            )
        if self.question_type == "multiple_choice" and len(self.options) != (
            MULTIPLE_CHOICE_OPTIONS
        ):
            raise PydanticCustomError(
                "option_count",
                "options: a multiple_choice question has {expected} options, not {count}",
                {"expected": MULTIPLE_CHOICE_OPTIONS, "count": len(self.options)},
            )
        if self.correct_option_index is None or self.correct_option_index >= len(self.options):
            raise PydanticCustomError(
                "index_out_of_range",
                "correct_option_index must be in 0..{last}",
                {"last": len(self.options) - 1},
            )
        return self

    def student_view(self) -> QuestionView:
        """The question without its answer.

        Returns:
            What may be shown before the student answers.
        """
        return QuestionView.model_validate(self.model_dump(include=set(QuestionView.model_fields)))

    @property
    def correct_answer(self) -> str:
        """The correct option's text, or the first accepted answer."""
        if self.correct_option_index is None:
            return self.accepted_answers[0]
        return self.options[self.correct_option_index]


class Quiz(BaseModel):
    """A validated quiz (the original's ``Quiz`` plus how it compares with the request)."""

    topic: TopicName
    questions: list[Question]
    time_estimate_minutes: int = Field(ge=0)
    requested_questions: int | None = Field(default=None, ge=MIN_QUESTIONS, le=MAX_QUESTIONS)
    shortfall_reason: str = ""
    """Why the quiz has fewer questions than requested ('' when it has them all)."""

    def student_view(self) -> QuizView:
        """The quiz without answers.

        Returns:
            What may be shown before the student answers.
        """
        return QuizView(
            topic=self.topic,
            questions=[q.student_view() for q in self.questions],
            time_estimate_minutes=self.time_estimate_minutes,
            requested_questions=self.requested_questions,
            shortfall_reason=self.shortfall_reason,
        )


class QuizView(BaseModel):
    """A quiz as the student sees it before answering."""

    topic: TopicName
    questions: list[QuestionView]
    time_estimate_minutes: int = Field(ge=0)
    requested_questions: int | None = None
    shortfall_reason: str = ""


# --- Evaluation, analysis, misconceptions ------------------------------------------------


class EvaluationResult(BaseModel):
    """The evaluate route's answer: the verdict is computed, the model writes only words."""

    is_correct: bool
    feedback: str
    misconception: str | None = None
    hint_for_similar: str
    outcome: AnswerOutcome = "correct"
    correct_option_index: int | None = None
    """Revealed once the student has answered."""
    correct_answer: str = ""
    explanation: str = ""


class TopicMastery(BaseModel):
    """Mastery of one topic; ``score`` and ``status`` are computed, the words may be a model's."""

    topic: str
    score: float = Field(ge=0, le=100)
    status: MasteryStatus
    strength: str = ""
    weakness: str = ""
    evidence: list[str] = Field(default_factory=list)
    """Ids of the answers behind the score."""


class MisconceptionNote(BaseModel):
    """A misconception as the performance analysis reports it."""

    concept: str
    description: str
    correction: str
    suggested_review: str


class Recommendation(BaseModel):
    """What to do next; priority 1 comes first."""

    priority: int = Field(ge=1)
    topic: str
    action: str
    time_estimate: str


class PerformanceAnalysis(BaseModel):
    """The original's performance analysis; every figure in it is computed from answers."""

    overall_score: float = Field(ge=0, le=100)
    summary: str
    topic_mastery: list[TopicMastery] = Field(default_factory=list)
    misconceptions: list[MisconceptionNote] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)
    encouragement: str
    answered: int = Field(default=0, ge=0)
    correct: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)


class MisconceptionAnalysis(BaseModel):
    """The misconception buster's answer, with a validated redemption question."""

    wrong_option_chosen: str
    inferred_confusion: str
    counter_example: str
    explanation: str
    redemption_question: Question


class MisconceptionRecordView(BaseModel):
    """A misconception of a student with where it stands in its lifecycle."""

    id: str
    concept: str
    topic: str
    description: str
    state: MisconceptionState
    detected_at: dt.datetime
    updated_at: dt.datetime
    recheck_due: dt.datetime | None = None
    reopened_times: int = Field(default=0, ge=0)


class ConceptMasteryView(BaseModel):
    """The learner model's estimate for one concept, with the answers behind it."""

    concept: str
    topic: str
    p_mastery: float = Field(ge=0, le=1)
    status: MasteryStatus
    evidence: list[str] = Field(default_factory=list)
    next_review: dt.datetime | None = None


class LearnerMastery(BaseModel):
    """``GET /api/learner/mastery``: per concept and per topic."""

    concepts: list[ConceptMasteryView] = Field(default_factory=list)
    topics: list[TopicMastery] = Field(default_factory=list)


# --- Request bodies ----------------------------------------------------------------------

_REQUEST = ConfigDict(extra="ignore", str_strip_whitespace=False)


class GenerateQuizRequest(BaseModel):
    """``POST /api/quiz/generate``."""

    model_config = _REQUEST

    topic: TopicName
    context: Context = ""
    num_questions: int = Field(default=DEFAULT_QUESTIONS, ge=MIN_QUESTIONS, le=MAX_QUESTIONS)
    difficulty: RequestedDifficulty = "adaptive"
    previous_mistakes: list[FilledText] | None = Field(
        default=None, max_length=MAX_PREVIOUS_MISTAKES
    )
    """Targets named by the client; when absent, the newest open misconceptions are used."""
    lesson: Context = ""
    """The lesson just taught (the autopilot's): questions the model cannot write are
    built from it, as from ``context``."""
    material_ids: list[UUID] = Field(default_factory=list, max_length=MAX_MATERIAL_IDS)
    """Stored material of the caller's (``POST /api/materials``): questions the model
    cannot write are built from its pages, each naming its material and page."""


class GenerateQuizFromImageRequest(BaseModel):
    """``POST /api/quiz/generate-from-image``."""

    model_config = _REQUEST

    topic: TopicName
    image_base64: str = Field(min_length=1, max_length=MAX_IMAGE_BASE64_CHARS)
    mime_type: ImageMimeType
    num_questions: int = Field(default=DEFAULT_QUESTIONS, ge=MIN_QUESTIONS, le=MAX_QUESTIONS)
    difficulty: RequestedDifficulty = "adaptive"


class AnsweredQuestionRequest(BaseModel):
    """The question fields and the student's answer, shared by evaluate and misconception.

    With ``question_id`` the stored question is graded, whatever the body's question fields
    say; without it the body's fields are the question.
    """

    model_config = _REQUEST

    question_id: Identifier | None = None
    question: Text = ""
    """The question text (the original's field name)."""
    question_type: QuestionType = "multiple_choice"
    options: list[Text] = Field(default_factory=list, max_length=MULTIPLE_CHOICE_OPTIONS)
    correct_option_index: AnswerIndex | None = None
    accepted_answers: list[Text] = Field(default_factory=list)
    concept_tested: Text = ""
    explanation: Text = ""
    student_answer_index: AnswerIndex | None = None
    student_answer_text: Text | None = None
    """Fill-in-the-blank answers."""

    @model_validator(mode="after")
    def _answerable(self) -> Self:
        if self.question_id is not None:
            return self
        if not self.question.strip():
            raise PydanticCustomError(
                "question_missing", "question: give the question text or a question_id"
            )
        if self.question_type != "fill_in_the_blank":
            if self.correct_option_index is None:
                raise PydanticCustomError(
                    "index_missing",
                    "correct_option_index: required without a question_id",
                )
            if self.correct_option_index >= len(self.options):
                raise PydanticCustomError(
                    "index_out_of_range",
                    "correct_option_index must be in 0..{last}",
                    {"last": len(self.options) - 1},
                )
            if self.student_answer_index is not None and self.student_answer_index >= len(
                self.options
            ):
                raise PydanticCustomError(
                    "index_out_of_range",
                    "student_answer_index must be in 0..{last}",
                    {"last": len(self.options) - 1},
                )
        return self


class EvaluateAnswerRequest(AnsweredQuestionRequest):
    """``POST /api/quiz/evaluate``; no answer at all means the question was skipped."""

    topic_context: Context = ""


class MisconceptionRequest(AnsweredQuestionRequest):
    """``POST /api/quiz/misconception``: a wrong answer to diagnose."""

    session_id: Identifier | None = None
    user_id: Identifier | None = None


class QuizAnswerItem(BaseModel):
    """One answer of ``/api/analyze/performance``; ``is_correct`` is recomputed for stored
    questions."""

    model_config = _REQUEST

    question_id: Identifier | None = None
    question: Text = ""
    concept_tested: Text = ""
    student_answer_index: AnswerIndex | None = None
    student_answer_text: Text | None = None
    correct_option_index: AnswerIndex | None = None
    is_correct: bool | None = None
    """Only used for a question the service does not have; never for a stored one."""


class AnalyzePerformanceRequest(BaseModel):
    """``POST /api/analyze/performance``."""

    model_config = _REQUEST

    quiz_answers: list[QuizAnswerItem] = Field(min_length=1, max_length=MAX_ANSWERS_ANALYSED)
    topic: TopicName
    context: Context = ""
    user_id: Identifier | None = None
    topic_id: Identifier | None = None


class SavedQuizRequest(BaseModel):
    """``POST /api/quiz/persistence``: the latest quiz of a user and topic.

    A saved quiz is the client's own questions, each with its answer. A question without one
    (no ``correct_option_index``, or a blank without ``accepted_answers``) is refused with
    ``answers_withheld``: it is a question the server handed out without its answer (the
    original's clients saved the quiz they had generated), and the server does not hand the
    answer back before grading; such questions are stored already and graded by their id.
    """

    model_config = _REQUEST

    user_id: Identifier
    topic_id: Identifier
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)

    @field_validator("questions", mode="before")
    @classmethod
    def _with_answers(cls, questions: Any) -> Any:
        if not isinstance(questions, list):
            return questions
        for n, question in enumerate(questions):
            if not isinstance(question, dict):
                continue
            blank = question.get("question_type") == "fill_in_the_blank"
            keyless = (
                not question.get("accepted_answers")
                if blank
                else question.get("correct_option_index") is None
            )
            if keyless:
                raise PydanticCustomError(
                    ANSWERS_WITHHELD.code,
                    "questions[{n}] has no answer ({key}): a saved quiz is the client's own "
                    "questions with their answers; a question from /api/quiz/generate comes "
                    "without its answer and is stored already: grade it with "
                    "/api/quiz/evaluate and its id '{id}'",
                    {
                        "n": n,
                        "key": "accepted_answers" if blank else "correct_option_index",
                        "id": str(question.get("id", "")),
                    },
                )
        return questions


class SavedQuizQuery(BaseModel):
    """``GET /api/quiz/persistence`` query parameters."""

    model_config = _REQUEST

    user_id: Identifier
    topic_id: Identifier


class MisconceptionQuery(BaseModel):
    """``GET /api/learner/misconceptions`` query parameters."""

    model_config = _REQUEST

    state: MisconceptionState | None = None


# --- Results of the quiz's commands --------------------------------------------------------


class GeneratedQuiz(QuizView):
    """A stored quiz as the student sees it: the original's ``Quiz`` shape without answers.

    Every question has the id it is graded by (``quiz.grade`` with ``question_id``).
    """

    quiz_id: str = ""
    difficulty: QuestionDifficulty = "medium"
    """The difficulty asked of the model (chosen from the learner model for ``adaptive``)."""
    targets: list[str] = Field(default_factory=list)
    """The misconceptions the questions were aimed at."""


class MisconceptionDiagnosis(BaseModel):
    """The misconception buster's answer (the original's ``MisconceptionAnalysis`` shape).

    The redemption question is stored and shown without its answer; answer it with
    ``quiz.grade`` and its ``id`` to move the misconception on in its lifecycle.
    """

    wrong_option_chosen: str
    inferred_confusion: str
    counter_example: str
    explanation: str
    redemption_question: QuestionView
    misconception_id: str = ""
    state: MisconceptionState = "open"


class SavedQuestion(QuestionView):
    """A saved question: its answer and explanation only once the student has answered it."""

    answered: bool = False
    correct_option_index: int | None = None
    explanation: str | None = None
    accepted_answers: list[str] = Field(default_factory=list)


class SavedQuizView(BaseModel):
    """``GET/POST /api/quiz/persistence``: the latest saved quiz of a user and topic.

    The questions carry the ids they are graded by (``quiz.grade``); an empty quiz (nothing
    saved yet) has no questions.
    """

    user_id: str
    topic_id: str
    questions: list[SavedQuestion] = Field(default_factory=list)
    created_at: dt.datetime | None = None


class TopicMasteryState(BaseModel):
    """What other services read of a topic's mastery (``read_models.quiz.topic_mastery``)."""

    topic: str
    score: float = Field(ge=0, le=100)
    """0..100, from the concepts' knowledge-tracing estimates."""
    status: MasteryStatus
    attempts: int = Field(ge=0)
    open_misconceptions: int = Field(ge=0)
    last_attempted: dt.datetime | None = None
    next_review: dt.datetime | None = None
    """The earliest FSRS due date of its concepts."""


class LearnerFitResult(BaseModel):
    """What ``exammentor learner fit`` wrote: the fitted BKT parameters and their data."""

    prior: float
    learn: float
    slip: float
    guess: float
    forget: float
    answers: int
    sequences: int
    log_likelihood: float


# --- Commands ----------------------------------------------------------------------------
# Declared here beside their shapes; listed in exammentor.contracts.catalog. The study
# session travels on the command envelope (``session_id``), as for every command.

QUESTION_NOT_FOUND = ErrorCode(
    "question_not_found",
    404,
    "NOT_FOUND",
    "question_id: no stored question of the caller's (another user's is none).",
)
ANSWER_OUT_OF_RANGE = ErrorCode(
    "answer_out_of_range",
    422,
    "INVALID_ARGUMENT",
    "student_answer_index is not an option of the question; the message gives the range.",
)
ANSWER_KIND = ErrorCode(
    "answer_kind",
    422,
    "INVALID_ARGUMENT",
    "The answer does not fit the question type (an index for a blank, text for options).",
)
NOT_WRONG = ErrorCode(
    "answer_not_wrong",
    422,
    "FAILED_PRECONDITION",
    "student_answer_index: the answer is correct or skipped; there is nothing to diagnose.",
)
QUIZ_UNAVAILABLE = ErrorCode(
    "quiz_unavailable",
    422,
    "FAILED_PRECONDITION",
    "No valid question from the model within the retry bound and no source text (context, "
    "lesson) to build questions from; the message says which. Nothing was stored.",
)
DIAGNOSIS_FAILED = ErrorCode(
    "diagnosis_failed",
    422,
    "FAILED_PRECONDITION",
    "No valid redemption question within the retry bound; nothing was stored.",
)

ANSWERS_WITHHELD = ErrorCode(
    "answers_withheld",
    422,
    "INVALID_ARGUMENT",
    "A question to save has no answer: questions are handed out without their answers "
    "until graded (grade them with /api/quiz/evaluate and their id); a saved quiz carries "
    "the client's own questions with their answers.",
)

VISION_UNSUPPORTED = ErrorCode(
    "vision_unsupported",
    422,
    "FAILED_PRECONDITION",
    "The configured model cannot read images; configure one that can to use this route.",
)

QUIZ_GENERATE: Command[GenerateQuizRequest, GeneratedQuiz] = Command(
    "quiz.generate",
    1,
    "quiz",
    GenerateQuizRequest,
    GeneratedQuiz,
    errors=(INVALID_REQUEST, SESSION_NOT_FOUND, QUIZ_UNAVAILABLE, MATERIAL_UNKNOWN),
    summary=(
        "Generate, check and store N questions on a topic, aimed at previous_mistakes or "
        "else the student's newest open misconceptions; difficulty 'adaptive' is chosen "
        "from the learner model. Questions the model cannot write are built from the "
        "source text (context, material_ids, lesson) and labelled source=extract. "
        "Returned without answers; a shortfall says why."
    ),
)

QUIZ_GENERATE_FROM_IMAGE: Command[GenerateQuizFromImageRequest, GeneratedQuiz] = Command(
    "quiz.generate_from_image",
    1,
    "quiz",
    GenerateQuizFromImageRequest,
    GeneratedQuiz,
    errors=(INVALID_REQUEST, SESSION_NOT_FOUND, QUIZ_UNAVAILABLE, VISION_UNSUPPORTED),
    summary=(
        "Generate questions about an image (each with its visual_reference), checked and "
        "stored like quiz.generate, returned without answers."
    ),
)

QUIZ_GRADE: Command[EvaluateAnswerRequest, EvaluationResult] = Command(
    "quiz.grade",
    1,
    "quiz",
    EvaluateAnswerRequest,
    EvaluationResult,
    errors=(INVALID_REQUEST, QUESTION_NOT_FOUND, ANSWER_OUT_OF_RANGE, ANSWER_KIND),
    summary=(
        "Grade an answer in code (index, text for a blank, or none for skipped). With "
        "question_id the stored question is graded whatever the body says, the answer is "
        "logged and mastery, review card, item rating and misconceptions move on; the "
        "model writes only feedback and a hint."
    ),
)

QUIZ_DIAGNOSE: Command[MisconceptionRequest, MisconceptionDiagnosis] = Command(
    "quiz.diagnose",
    1,
    "quiz",
    MisconceptionRequest,
    MisconceptionDiagnosis,
    errors=(
        INVALID_REQUEST,
        QUESTION_NOT_FOUND,
        SESSION_NOT_FOUND,
        ANSWER_OUT_OF_RANGE,
        ANSWER_KIND,
        NOT_WRONG,
        DIAGNOSIS_FAILED,
    ),
    summary=(
        "Diagnose a wrong answer: inferred confusion, counter-example, explanation and a "
        "checked, stored redemption question; recorded as an open misconception and, with "
        "a session_id, appended to the session's audit log (misconception_buster)."
    ),
)

QUIZ_ANALYZE: Command[AnalyzePerformanceRequest, PerformanceAnalysis] = Command(
    "quiz.analyze",
    1,
    "quiz",
    AnalyzePerformanceRequest,
    PerformanceAnalysis,
    errors=(INVALID_REQUEST, QUESTION_NOT_FOUND, ANSWER_OUT_OF_RANGE, ANSWER_KIND),
    summary=(
        "Analyse answers: every grade of a stored question recomputed from the answer "
        "log (a client's is_correct is ignored for it), figures in code, words by the model."
    ),
)

QUIZ_SAVE: Command[SavedQuizRequest, SavedQuizView] = Command(
    "quiz.save",
    1,
    "quiz",
    SavedQuizRequest,
    SavedQuizView,
    errors=(INVALID_REQUEST, NOT_FOUND, ANSWERS_WITHHELD),
    summary=(
        "Save a quiz as the latest of a user and topic; its questions are stored and "
        "graded like generated ones, and come back without answers until answered."
    ),
)

QUIZ_COMMANDS: tuple[Command[Any, Any], ...] = (
    QUIZ_GENERATE,
    QUIZ_GENERATE_FROM_IMAGE,
    QUIZ_GRADE,
    QUIZ_DIAGNOSE,
    QUIZ_ANALYZE,
    QUIZ_SAVE,
)
"""Every command of the quiz service."""
