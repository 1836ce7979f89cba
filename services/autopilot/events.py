"""The domain events of a run's new steps: ``autopilot.step`` for each, and the lifecycle
event (started, paused, resumed, stopped, completed) a step stands for."""

from __future__ import annotations

from exammentor.contracts.autopilot import AutopilotStep
from exammentor.contracts.events import (
    AutopilotCompletedV1,
    AutopilotPausedV1,
    AutopilotResumedV1,
    AutopilotStartedV1,
    AutopilotStepV1,
    AutopilotStoppedV1,
    DomainEvent,
)
from services.autopilot.domain import AutopilotRun


def run_events(run: AutopilotRun, steps: tuple[AutopilotStep, ...]) -> list[DomainEvent]:
    """The events of ``steps``, just recorded in ``run``, in step order.

    Args:
        run: The run after the steps.
        steps: The steps added.

    Returns:
        One ``autopilot.step`` per step, each lifecycle event after its step.
    """
    ids = {"session_id": run.session_id, "run_number": run.run_number}
    elapsed = run.elapsed_before_ms / 1000
    events: list[DomainEvent] = []
    for step in steps:
        topic = step.data.get("topic")
        events.append(
            AutopilotStepV1(
                **ids,
                number=step.number,
                action=step.action,
                reasoning=step.reasoning,
                duration_ms=step.duration_ms,
                status=step.status,
                phase=step.phase,
                topic=topic if isinstance(topic, str) else run.current_topic,
            )
        )
        if step.action == "start":
            events.append(
                AutopilotStartedV1(
                    **ids,
                    target_duration_minutes=run.target_duration_minutes,
                    topics=[t.name for t in run.topics],
                )
            )
        elif step.action == "pause":
            events.append(AutopilotPausedV1(**ids, elapsed_seconds=elapsed))
        elif step.action == "resume":
            events.append(AutopilotResumedV1(**ids, elapsed_seconds=elapsed))
        elif step.action == "stop":
            events.append(
                AutopilotStoppedV1(
                    **ids, elapsed_seconds=elapsed, topics_completed=list(run.topics_completed)
                )
            )
        elif step.action in ("complete", "fail"):
            events.append(
                AutopilotCompletedV1(
                    **ids,
                    status=run.status,
                    reason=run.end_reason or step.reasoning,
                    elapsed_seconds=elapsed,
                    topics_completed=list(run.topics_completed),
                )
            )
    return events
