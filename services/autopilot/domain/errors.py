"""Refusals of the autopilot's domain. Each leaves the run as it was and says why, with the
numbers; :class:`AutopilotRefusal` is bad input the handler answers with a 400."""

from __future__ import annotations


class AutopilotRefusal(ValueError):
    """Base class: the request does not fit the run as it stands (a 400)."""


class RunSetupError(AutopilotRefusal):
    """The run cannot be set up: topic weights or prerequisites that cannot be used."""


class PrerequisiteCycleError(RunSetupError):
    """Prerequisite pairs that go round in a circle.

    Attributes:
        cycle: The topic names along the cycle, the first repeated at the end.
    """

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"prerequisite cycle: {' -> '.join(cycle)}")


class RunActiveError(AutopilotRefusal):
    """A start while the session's run is still running or paused.

    Attributes:
        status: The active run's status.
        run_number: The active run's number.
    """

    def __init__(self, status: str, run_number: int) -> None:
        self.status = status
        self.run_number = run_number
        super().__init__(
            f"run {run_number} of this session is {status}; stop it before starting another"
        )


class ControlRefused(AutopilotRefusal):
    """Pause, resume or stop when the run's status does not allow it.

    Attributes:
        control: ``pause``, ``resume`` or ``stop``.
        status: The run's status, which the control needs to be otherwise.
    """

    def __init__(self, control: str, status: str, needs: str) -> None:
        self.control = control
        self.status = status
        super().__init__(f"{control} needs a {needs} run; this run is {status}")


class AnswerRefused(AutopilotRefusal):
    """An answer that cannot be taken: no question waiting, another question's id, an option
    index out of range, or a wait already over.

    Attributes:
        question_id: The id the answer named.
        answer_index: The index it chose.
        waiting_question_id: The question waiting, if any.
    """

    def __init__(
        self,
        reason: str,
        *,
        question_id: str,
        answer_index: int,
        waiting_question_id: str | None,
    ) -> None:
        self.question_id = question_id
        self.answer_index = answer_index
        self.waiting_question_id = waiting_question_id
        super().__init__(reason)


class OutcomeRejected(ValueError):
    """A driver's outcome that does not answer the action the run waits for.

    Not the student's error: the driver raced a control or a timer, or has a bug. It reads
    :func:`~services.autopilot.domain.next_action` again and goes on from there.

    Attributes:
        action_id: The action the outcome names.
        expected_action_id: The action the run waits for.
    """

    def __init__(self, reason: str, *, action_id: int, expected_action_id: int) -> None:
        self.action_id = action_id
        self.expected_action_id = expected_action_id
        super().__init__(reason)
