"""The autopilot's pure domain: topic choice and the run as a state machine.

No I/O and no clock: the driver (the service's handlers) reads the state, asks
:func:`next_action` what to do, does it (tutor, quiz, learner model, a timer), and records
the result with :func:`apply`; the student's answer, pause, resume and stop go through
:func:`apply` too. The run (:class:`AutopilotRun`) is a JSON value the driver stores after
every change, so any replica can carry it on. Tested in ``tests/unit/autopilot``.
"""

from services.autopilot.domain.actions import (
    Action,
    AwaitAnswer,
    DiagnoseAnswer,
    DriverAction,
    FinishRun,
    GenerateQuiz,
    Idle,
    ReadLearner,
    TeachLesson,
    UpdateMastery,
)
from services.autopilot.domain.errors import (
    AnswerRefused,
    AutopilotRefusal,
    ControlRefused,
    OutcomeRejected,
    PrerequisiteCycleError,
    RunActiveError,
    RunSetupError,
)
from services.autopilot.domain.machine import Applied, apply, next_action, start_run
from services.autopilot.domain.outcomes import (
    ActionFailed,
    AnswerDiagnosed,
    AnswerGiven,
    AnswerReceived,
    AnswerTimedOut,
    DriverOutcome,
    LearnerRead,
    LessonSkipped,
    LessonTaught,
    MasteryUpdated,
    Outcome,
    PauseRequested,
    QuizGenerated,
    QuizSkipped,
    ResumeRequested,
    RunFinished,
    StopRequested,
    StudentOutcome,
)
from services.autopilot.domain.policy import DEFAULT_POLICY, AutopilotPolicy
from services.autopilot.domain.state import (
    AnswerResult,
    AutopilotRun,
    GradedAnswer,
    PendingAnswer,
    QuizQuestion,
)
from services.autopilot.domain.topics import (
    ChoiceRule,
    PlanTopic,
    TopicChoice,
    choose_topic,
    direct_prerequisites,
    study_topics,
)
from services.autopilot.domain.views import (
    control_response,
    start_response,
    status_view,
    watch_events,
)

__all__ = [
    "DEFAULT_POLICY",
    "Action",
    "ActionFailed",
    "AnswerDiagnosed",
    "AnswerGiven",
    "AnswerReceived",
    "AnswerRefused",
    "AnswerResult",
    "AnswerTimedOut",
    "Applied",
    "AutopilotPolicy",
    "AutopilotRefusal",
    "AutopilotRun",
    "AwaitAnswer",
    "ChoiceRule",
    "ControlRefused",
    "DiagnoseAnswer",
    "DriverAction",
    "DriverOutcome",
    "FinishRun",
    "GenerateQuiz",
    "GradedAnswer",
    "Idle",
    "LearnerRead",
    "LessonSkipped",
    "LessonTaught",
    "MasteryUpdated",
    "Outcome",
    "OutcomeRejected",
    "PauseRequested",
    "PendingAnswer",
    "PlanTopic",
    "PrerequisiteCycleError",
    "QuizGenerated",
    "QuizQuestion",
    "QuizSkipped",
    "ReadLearner",
    "ResumeRequested",
    "RunActiveError",
    "RunFinished",
    "RunSetupError",
    "StopRequested",
    "StudentOutcome",
    "TeachLesson",
    "TopicChoice",
    "UpdateMastery",
    "apply",
    "choose_topic",
    "control_response",
    "direct_prerequisites",
    "next_action",
    "start_response",
    "start_run",
    "status_view",
    "study_topics",
    "watch_events",
]
