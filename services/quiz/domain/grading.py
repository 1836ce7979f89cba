"""Grading in code, from the stored question: the model never decides what is correct.

Rules:

- An option index is correct when it is the question's ``correct_option_index``; an index
  outside the options is refused with the range (:class:`AnswerOutOfRangeError`), a negative
  one included (the original took ``-1``, its timeout, for the last option).
- A written answer to a fill-in-the-blank question is correct when it matches one of the
  accepted answers after :func:`normalised` (case, punctuation and spacing ignored).
- No answer (skipped, timed out) is ``skipped``: never an option, never a misconception,
  and not evidence of a wrong belief.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from exammentor.contracts.quiz import AnswerOutcome, Question
from services.quiz.domain.errors import AnswerKindError, AnswerOutOfRangeError
from services.quiz.domain.text import normalised

StudentAnswer = int | str | None
"""An option index, a written answer (fill-in-the-blank), or ``None`` for skipped."""


class Grade(BaseModel):
    """A computed verdict on one answer."""

    model_config = ConfigDict(frozen=True)

    question_id: str
    outcome: AnswerOutcome
    chosen_index: int | None = None
    chosen_text: str = ""
    """The option chosen or the words written ('' when skipped)."""
    correct_index: int | None = None
    correct_answer: str

    @property
    def is_correct(self) -> bool:
        """Whether the answer was right (a skip is not)."""
        return self.outcome == "correct"

    @property
    def observation(self) -> bool | None:
        """What the learner model learns from this answer: right, wrong, or nothing."""
        return None if self.outcome == "skipped" else self.outcome == "correct"


def grade_answer(question: Question, answer: StudentAnswer) -> Grade:
    """Grade one answer against the stored question.

    Args:
        question: The stored question (never the client's copy of it).
        answer: An option index, a written answer for fill-in-the-blank, or ``None`` when
            the student skipped or ran out of time.

    Returns:
        The verdict.

    Raises:
        AnswerOutOfRangeError: An index outside the question's options (negative included).
        AnswerKindError: Text for a choice question, or an index for a blank.
    """

    def verdict(outcome: AnswerOutcome, index: int | None = None, text: str = "") -> Grade:
        return Grade(
            question_id=question.id,
            outcome=outcome,
            chosen_index=index,
            chosen_text=text,
            correct_index=question.correct_option_index,
            correct_answer=question.correct_answer,
        )

    if answer is None:
        return verdict("skipped")
    if question.question_type == "fill_in_the_blank":
        if not isinstance(answer, str):
            raise AnswerKindError(question.question_type, "an option index")
        written = " ".join(answer.split())
        if not normalised(written):
            return verdict("skipped")
        accepted = {normalised(text) for text in question.accepted_answers}
        return verdict("correct" if normalised(written) in accepted else "wrong", text=written)
    # bool is an int to Python; True is not option 1.
    if isinstance(answer, (str, bool)):
        raise AnswerKindError(question.question_type, "text")
    if not 0 <= answer < len(question.options):
        raise AnswerOutOfRangeError(answer, len(question.options))
    outcome: AnswerOutcome = "correct" if answer == question.correct_option_index else "wrong"
    return verdict(outcome, answer, question.options[answer])
