"""Errors of the quiz domain; each is bad input or a refused step the service answers with
a 4xx, and each carries the numbers or states behind it."""

from __future__ import annotations


class QuizDomainError(ValueError):
    """Base class: the request cannot be carried out as it stands."""


class AnswerOutOfRangeError(QuizDomainError):
    """An option index the question does not have.

    Attributes:
        index: The index given.
        option_count: How many options the question has.
    """

    def __init__(self, index: int, option_count: int) -> None:
        self.index = index
        self.option_count = option_count
        super().__init__(
            f"answer index {index} is out of range: this question's options are "
            f"0..{option_count - 1}"
        )


class AnswerKindError(QuizDomainError):
    """An answer of the wrong kind: text for a choice question, or an index for a blank.

    Attributes:
        question_type: The question's type.
        given: What kind of answer came (``index`` or ``text``).
    """

    def __init__(self, question_type: str, given: str) -> None:
        self.question_type = question_type
        self.given = given
        wanted = "a written answer" if question_type == "fill_in_the_blank" else "an option index"
        super().__init__(f"a {question_type} question takes {wanted}, not {given}")


class TransitionRefusedError(QuizDomainError):
    """A misconception step its state does not allow.

    Attributes:
        record_id: The misconception.
        state: Its state.
        action: The step refused.
    """

    def __init__(self, record_id: str, state: str, action: str, reason: str) -> None:
        self.record_id = record_id
        self.state = state
        self.action = action
        super().__init__(f"misconception {record_id} is {state}: cannot {action} - {reason}")


class NoAnswersError(QuizDomainError):
    """Nothing to fit or analyse."""
