"""Commands the planner handles: ``plan.generate`` v1, a verified study plan with its history.

Every plan route of the gateway sends the same command: verification costs no model call, so
there is no reason to serve an unverified plan; the routes differ only in what they return
of the result and in whether they relay the progress as it happens.

The handler answers identical requests from the plan cache, runs
:class:`~services.planner.workflow.PlanWorkflow` otherwise, stores the plan for the user (and
study session) and emits ``plan.generated`` and ``plan.verified`` v1.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from exammentor import sessions
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import PlanGeneratedV1, PlanVerifiedV1
from exammentor.contracts.plan import (
    PlanRequest,
    PlanResult,
    PlanVerification,
    StudyPlan,
    VerificationSummary,
)
from exammentor.db import Connection
from exammentor.messaging.consumer import CommandContext, CommandRejected, CommandRouter, Outcome
from exammentor.worker import WorkerResources
from services.planner import repo
from services.planner.domain import (
    CapacityError,
    Clarification,
    EmptySyllabusError,
    NoStudyDaysError,
    PlanningError,
    UnknownScopeError,
    load_registry,
    plan_cache_key,
)
from services.planner.settings import PlannerSettings
from services.planner.workflow import PlanWorkflow, status_event


def rejection(error: PlanningError | UnknownScopeError, request: PlanRequest) -> CommandRejected:
    """A domain refusal as the command's final error, naming the field and the numbers.

    Args:
        error: What the domain refused.
        request: The request.

    Returns:
        The rejection (the gateway answers 422, or 413 for ``syllabus_too_large``).
    """
    if isinstance(error, UnknownScopeError):
        return CommandRejected(
            "unknown_exam",
            f"exam_type: {request.exam_type!r} is not an exam the planner knows "
            f"({', '.join(error.known)}); paste a syllabus_text or choose a known exam",
            {"field": "exam_type", "known_exams": error.known},
        )
    if isinstance(error, CapacityError):
        return CommandRejected(
            "capacity_exceeded",
            f"days: {error}",
            {
                "field": "days",
                "needed_hours": error.needed_hours,
                "available_hours": error.available_hours,
                "revision_reserve_hours": error.revision_reserve_hours,
                "study_days": error.study_days,
                "hours_per_day": error.hours_per_day,
                "min_days_needed": error.min_days_needed,
            },
        )
    if isinstance(error, EmptySyllabusError):
        return CommandRejected(
            "syllabus_empty", f"syllabus_text: {error}", {"field": "syllabus_text"}
        )
    if isinstance(error, NoStudyDaysError):
        field_name = "exam_date" if request.exam_date is not None else "days_off"
        return CommandRejected("no_study_days", f"{field_name}: {error}", {"field": field_name})
    return CommandRejected("planning_failed", str(error))


def _events(ctx: CommandContext, plan_id: UUID, body: dict[str, Any]) -> list[EventEnvelope]:
    plan = StudyPlan.model_validate(body["final_plan"])
    verification = PlanVerification.model_validate(body["verification"])
    summary = VerificationSummary.model_validate(body["verification_summary"])
    from_cache = bool(body.get("from_cache"))
    return [
        ctx.event(
            PlanGeneratedV1(
                plan_id=plan_id,
                exam_name=plan.exam_name,
                total_days=plan.total_days,
                start_date=plan.schedule[0].date if plan.schedule else None,
                topics_count=verification.required_topics_count,
                dropped_topics_count=len(plan.dropped_topics),
                critical_topics=plan.critical_topics,
                from_cache=from_cache,
            )
        ),
        ctx.event(
            PlanVerifiedV1(
                plan_id=plan_id,
                is_valid=verification.is_valid,
                coverage_percent=verification.coverage_percent,
                required_topics_count=verification.required_topics_count,
                scheduled_topics_count=verification.scheduled_topics_count,
                missing_topics_count=len(verification.missing_topics),
                overloaded_days_count=summary.overloaded_days_count,
                prerequisite_issues_count=summary.prerequisite_issues_count,
                revision_present=verification.revision_present,
                iterations_used=summary.iterations_used,
                self_correction_applied=bool(body.get("self_correction_applied")),
                from_cache=from_cache,
            )
        ),
    ]


async def generate_plan(
    ctx: CommandContext,
    request: PlanRequest,
    workflow: PlanWorkflow,
    settings: PlannerSettings,
) -> Outcome[PlanResult]:
    """``plan.generate`` v1: a verified plan with its history, from the cache when it can.

    Args:
        ctx: The command's context.
        request: The plan request.
        workflow: The planner's workflow.
        settings: The planner's settings.

    Returns:
        The result, the plan's row (and cache entry) to write, and the two events.

    Raises:
        CommandRejected: Bad input the domain refused, or an unknown study session.
    """
    request = workflow.with_start_date(request)
    key = plan_cache_key(request, workflow.fingerprint)
    session_id = ctx.envelope.session_id
    async with ctx.transaction() as conn:
        if session_id is not None and not await sessions.session_exists(conn, session_id):
            raise CommandRejected("session_not_found", f"session_id: no study session {session_id}")
        cached = await repo.cached_result(conn, key) if settings.plan_cache_ttl_s > 0 else None
    if cached is not None:
        await ctx.progress(status_event("cache", "Answered from the plan cache", from_cache=True))
        body = {**cached, "from_cache": True}
    else:
        try:
            planned = await workflow.run(request, ctx.progress)
        except (PlanningError, UnknownScopeError) as exc:
            raise rejection(exc, request) from exc
        if isinstance(planned, Clarification):
            return Outcome(result=PlanResult.model_validate(planned.as_result()))
        body = planned.as_result()

    plan_id = uuid4()
    result = PlanResult.model_validate({**body, "plan_id": plan_id})
    store_in_cache = cached is None and settings.plan_cache_ttl_s > 0

    async def persist(conn: Connection) -> None:
        await repo.insert_study_plan(
            conn,
            plan_id=plan_id,
            user_id=ctx.user_id,
            session_id=session_id,
            request_id=ctx.envelope.request_id,
            plan=body["final_plan"],
            verification=body["verification"],
            history={k: v for k, v in body.items() if k not in ("final_plan", "verification")},
            from_cache=bool(body["from_cache"]),
        )
        if store_in_cache:
            await repo.store_cached_result(conn, key, body, settings.plan_cache_ttl_s)

    return Outcome(result=result, persist=persist, events=_events(ctx, plan_id, body))


def install_handlers(router: CommandRouter, resources: WorkerResources[PlannerSettings]) -> None:
    """Registers the planner's handlers: ``plan.generate`` v1.

    Args:
        router: The planner's router.
        resources: The worker's settings, pool, broker and model client.
    """
    settings = resources.settings
    registry = load_registry([settings.extra_syllabi_dir] if settings.extra_syllabi_dir else [])
    workflow = PlanWorkflow(registry, resources.llm, settings)

    @router.handle(PLAN_GENERATE)
    async def _generate(ctx: CommandContext, request: PlanRequest) -> Outcome[PlanResult]:
        return await generate_plan(ctx, request, workflow, settings)
