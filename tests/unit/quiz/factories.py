"""Small builders of valid questions for the quiz tests."""

from __future__ import annotations

from exammentor.contracts.quiz import Question, QuestionDifficulty


def choice_question(
    qid: str = "q1",
    *,
    correct: int = 1,
    concept: str = "kinematics",
    difficulty: QuestionDifficulty = "medium",
    text: str = "Which quantity is a vector?",
) -> Question:
    return Question(
        id=qid,
        text=text,
        options=["speed", "velocity", "mass", "time"],
        correct_option_index=correct,
        explanation="Velocity has a direction; the others do not.",
        difficulty=difficulty,
        concept_tested=concept,
    )


def blank_question(qid: str = "b1", concept: str = "units") -> Question:
    return Question(
        id=qid,
        text="The SI unit of power is the ___.",
        question_type="fill_in_the_blank",
        accepted_answers=["watt", "W"],
        explanation="One watt is one joule per second.",
        concept_tested=concept,
    )
