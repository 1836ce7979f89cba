"""The run as its clients see it: the status, the start and control replies, and the watch
stream's events. Answers of waiting questions never appear in any of them."""

from __future__ import annotations

import datetime as dt

from exammentor.contracts.autopilot import (
    AutopilotControlResponse,
    AutopilotStartResponse,
    AutopilotStatusResponse,
    AutopilotWatchEvent,
    QuestionView,
)
from services.autopilot.domain.state import AutopilotRun


def _current_content(run: AutopilotRun) -> str | None:
    # The newest lesson while the topic is taught, until its quiz begins.
    if run.lessons and run.phase in ("teaching", "quizzing"):
        return run.lessons[-1]
    return None


def _current_question(run: AutopilotRun) -> QuestionView | None:
    question = run.waiting_question
    return None if question is None else question.view()


def status_view(run: AutopilotRun, now: dt.datetime) -> AutopilotStatusResponse:
    """The status of a run at ``now``.

    Args:
        run: The run.
        now: The current time; study time counts up to it while the run is running.

    Returns:
        The original's status fields and the extensions; ``current_question`` without its
        answer, ``awaiting_input`` only while a question waits in a running run.
    """
    due_ms = run.answer_due_ms
    question = _current_question(run)
    return AutopilotStatusResponse(
        session_id=run.session_id,
        run_number=run.run_number,
        status=run.status,
        current_phase=run.phase,
        current_topic=run.current_topic,
        topics_completed=list(run.topics_completed),
        elapsed_seconds=run.elapsed_ms(now) / 1000,
        target_duration_minutes=run.target_duration_minutes,
        topic_mastery=[entry.model_copy(deep=True) for entry in run.mastery],
        steps=list(run.steps),
        started_at=run.started_at,
        completed_at=run.completed_at,
        current_content=_current_content(run),
        current_question=question,
        # An answer received and being graded is not asked for again.
        awaiting_input=question is not None and run.status == "running" and run.pending is None,
        answer_deadline=None if due_ms is None else run.wall_time_at(due_ms),
        end_reason=run.end_reason,
    )


def start_response(run: AutopilotRun) -> AutopilotStartResponse:
    """The reply to a start."""
    return AutopilotStartResponse(
        session_id=run.session_id,
        status=run.status,
        target_duration_minutes=run.target_duration_minutes,
        started_at=run.started_at,
        run_number=run.run_number,
    )


def control_response(run: AutopilotRun) -> AutopilotControlResponse:
    """The reply to a pause, resume or stop: the run's new status."""
    return AutopilotControlResponse(status=run.status, session_id=run.session_id)


def watch_events(run: AutopilotRun, after_seq: int = 0) -> list[AutopilotWatchEvent]:
    """The watch stream's events after ``after_seq``, in order.

    Args:
        run: The run.
        after_seq: The last ``seq`` the client saw (0 for all).

    Returns:
        One event per step after ``after_seq``; the newest carries the run's present lesson
        text and waiting question.
    """
    events: list[AutopilotWatchEvent] = []
    newest = len(run.steps)
    for step in run.steps[max(0, after_seq) :]:
        present = step.number == newest
        question = _current_question(run) if present else None
        events.append(
            AutopilotWatchEvent(
                seq=step.number,
                session_id=run.session_id,
                run_number=run.run_number,
                step=step,
                status=step.status,
                current_phase=step.phase,
                current_topic=run.current_topic if present else None,
                awaiting_input=present and question is not None and run.status == "running",
                current_content=_current_content(run) if present else None,
                current_question=question,
            )
        )
    return events
