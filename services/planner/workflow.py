"""The planner's workflow: one plan request, from the goal to the explained, verified plan.

The model calls and the progress reports live here; every decision is the pure domain's
(``services.planner.domain``), every prompt and screen is in ``prompts``. One run of
:class:`PlanWorkflow`:

1. **Read the syllabus**: a pasted one is parsed (registry names help it read commas and
   headings); without one the exam must be in the registry. Bad input is refused here,
   before any progress is streamed or any model is called.
2. **Route**: a structured model call reads intent, exam and scope from the goal; the
   domain cross-checks the answer (``cross_check``): a scope is accepted only when the
   registry knows it *and* the student's own words support it. A goal that names what the
   registry cannot place (NEET mathematics, an exam other than the one chosen) gets a
   clarifying question as its result instead of a guessed plan.
3. **Topics** (``resolve_topics``): the pasted syllabus wins, every topic of it; the
   registry enriches it (weights, hours, prerequisites) and what the goal names is
   weighted; a pasted topic is left out only when the goal asks in as many words ("only
   Genetics"), and the plan says which and why. The registry's own topics, narrowed to the
   goal's scope, are planned when nothing was pasted.
4. **Schedule and verify** with the pure domain (exact; a pasted syllabus whose estimated
   hours run long has them scaled to fit, down to half; a syllabus that still does not fit
   is refused with the numbers or planned with topics dropped, as the request chooses).
5. **Fix loop**: when the goal asks for an order the scheduler cannot express ("Genetics
   first"), the model proposes moves, the verifier checks the moved plan, and a failed check
   goes back as the critique, for at most ``max_fix_rounds``. Every version is kept with its
   verification and a diff; the last version that passed is the final plan.
6. **Words**: the model writes the overview, day themes and per-topic reasons; each item is
   screened, and the scheduler's own text stays wherever the model's does not pass. No model
   failure fails a plan.

Neither the database nor Kafka is touched here: the ``plan.generate`` handler around it
answers from the plan cache, stores the plan and emits the events.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from exammentor.contracts.plan import (
    PlanRequest,
    PlanVersion,
    StudyPlan,
    VerificationSummary,
    VerifiedPlanHistory,
)
from exammentor.llm.answers import ModelRun, token_budget
from exammentor.llm.client import LLMClient
from exammentor.logs import get_logger
from services.planner import prompts
from services.planner.domain import (
    CapacityError,
    Clarification,
    EmptySyllabusError,
    ParsedTopic,
    PlannedStudy,
    Routing,
    SyllabusRegistry,
    SyllabusTopic,
    apply_moves,
    apply_prose,
    choose_final,
    cross_check,
    diff_plans,
    fit_estimates,
    learning_days,
    normalise_topic_name,
    parse_syllabus,
    plan_fingerprint,
    plan_lines,
    resolve_topics,
    schedule_plan,
    theme_listing,
    verify_plan,
    wished_topics,
    with_left_out,
)
from services.planner.settings import PlannerSettings

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

ProgressSink = Callable[[dict[str, Any]], Awaitable[None]]
"""Where the workflow reports its stages (``ctx.progress`` in the service)."""


async def _no_progress(_: dict[str, Any]) -> None:
    return None


class PlanWorkflow:
    """Routes, schedules, verifies, fixes and explains one plan request.

    Holds no per-request state; one instance serves every command of a worker. Neither the
    database nor Kafka is touched here, so the benchmark and the unit tests run it as is.
    """

    def __init__(
        self, registry: SyllabusRegistry, llm: LLMClient | None, settings: PlannerSettings
    ) -> None:
        """Builds the workflow.

        Args:
            registry: The syllabus registry.
            llm: The model client; None plans without any model call.
            settings: The planner's settings.
        """
        self.registry = registry
        self.llm = llm if settings.llm_enabled else None
        self.settings = settings
        self.choices = prompts.RouterChoices.from_registry(registry)
        self.router_schema = prompts.router_schema(self.choices)
        model = self.llm.settings.model if self.llm is not None else "none"
        self.fingerprint = plan_fingerprint(
            registry,
            model,
            max_fix_rounds=settings.max_fix_rounds,
            prose_max_days=settings.prose_max_days,
            prose_max_topics=settings.prose_max_topics,
        )

    @staticmethod
    def with_start_date(request: PlanRequest, today: dt.date | None = None) -> PlanRequest:
        """The request with ``start_date`` filled (today, UTC, when it was left out).

        Args:
            request: The request.
            today: The date to use; today in UTC when None.

        Returns:
            The request, unchanged when it had a start date.
        """
        if request.start_date is not None:
            return request
        return request.model_copy(update={"start_date": today or dt.datetime.now(dt.UTC).date()})

    def read_syllabus(self, request: PlanRequest) -> list[ParsedTopic] | None:
        """The pasted syllabus, parsed; checks what can be checked before any model call.

        Args:
            request: The request.

        Returns:
            The parsed topics, or None when nothing was pasted.

        Raises:
            EmptySyllabusError: The pasted text holds no topic.
            UnknownScopeError: Nothing pasted and the registry does not know the exam.
        """
        if request.syllabus_text is None:
            self.registry.exam(request.exam_type)  # raises for an exam it does not know
            return None
        parsed = parse_syllabus(
            request.syllabus_text,
            known_topics=self.registry.vocabulary(),
            section_names=self.registry.section_names(),
        )
        if not parsed:
            raise EmptySyllabusError("syllabus_text holds no topic names")
        return parsed

    async def route(
        self, request: PlanRequest, parsed: Sequence[ParsedTopic] | None, calls: ModelRun
    ) -> Routing | Clarification:
        """Asks the model for intent, exam and scope and cross-checks the answer.

        Args:
            request: The request.
            parsed: The pasted syllabus, parsed.
            calls: The run's model calls.

        Returns:
            See :func:`cross_check`.
        """
        answer = await calls.ask(
            "plan.route",
            prompts.router_messages(
                request.goal, request.exam_type, syllabus_pasted=parsed is not None
            ),
            self.router_schema,
            max_tokens=prompts.ROUTER_MAX_TOKENS,
            validate=self.choices.check,
        )
        return cross_check(
            self.registry,
            request,
            parsed,
            answer.to_decision() if answer is not None else None,
            calls.status.get("plan.route", "off"),
        )

    async def run(
        self, request: PlanRequest, progress: ProgressSink = _no_progress
    ) -> PlannedStudy | Clarification:
        """One plan request, from the goal to the explained, verified plan.

        Args:
            request: The request (``start_date`` filled; see :meth:`with_start_date`).
            progress: Receives ``status``, ``draft`` and ``verification`` events.

        Returns:
            The plan and its history, or a clarifying question.

        Raises:
            PlanningError: Bad input: an empty syllabus, a syllabus that does not fit, no
                study day left.
            UnknownScopeError: An exam the registry does not know and no syllabus.
        """
        parsed = self.read_syllabus(request)
        calls = ModelRun(self.llm)
        await progress(status_event("routing", "Reading your goal"))
        routing = await self.route(request, parsed, calls)
        if isinstance(routing, Clarification):
            return routing
        resolved = resolve_topics(self.registry, routing, parsed, request.goal)
        await progress(
            status_event(
                "scheduling",
                f"Scheduling {len(resolved.topics)} topics over {request.days} days",
                routing=routing.as_dict(),
            )
        )
        schedule = functools.partial(
            schedule_plan,
            days=request.days,
            hours_per_day=request.hours_per_day,
            start_date=request.start_date,
            exam_date=request.exam_date,
            days_off=request.days_off,
            exam_name=routing.exam_name,
        )
        try:
            # A pasted syllabus is planned whole: estimates that run long are scaled first,
            # before the request's overflow policy refuses or drops anything.
            scheduled = schedule(resolved.topics, overflow="refuse")
        except CapacityError as error:
            resolved = fit_estimates(resolved, error) or resolved
            scheduled = schedule(resolved.topics, overflow=request.overflow)
        required = scheduled.topics
        plan = with_left_out(scheduled.plan, resolved.left_out, resolved.left_out_reason)
        first = PlanVersion(
            version=1,
            plan=plan,
            verification=verify_plan(plan, required, hours_per_day=request.hours_per_day),
            was_accepted=False,
        )
        versions = [first]
        await _report(progress, first)
        fix_log = await self._fix_loop(request, required, versions, calls, progress)

        final = choose_final(versions)
        await progress(status_event("explaining", "Writing the overview and the reasons"))
        explained, prose = await self._explain(final.plan, required, calls)
        versions = [
            v.model_copy(update={"was_accepted": True, "plan": explained})
            if v.version == final.version
            else v
            for v in versions
        ]
        history = VerifiedPlanHistory(
            final_plan=explained,
            versions=versions,
            total_iterations=len(versions),
            self_correction_applied=final.version > 1,
            verification_summary=VerificationSummary.from_verification(
                final.verification, len(versions)
            ),
        )
        prose["calls"] = dict(calls.status)
        return PlannedStudy(
            history=history,
            verification=final.verification,
            routing=routing,
            capacity=scheduled.capacity,
            topics=resolved,
            fix_log=fix_log,
            prose=prose,
        )

    async def _fix_loop(
        self,
        request: PlanRequest,
        required: Sequence[SyllabusTopic],
        versions: list[PlanVersion],
        calls: ModelRun,
        progress: ProgressSink,
    ) -> list[dict[str, Any]]:
        """Model-proposed changes for what the scheduler cannot express, checked exactly."""
        wished = wished_topics(request.goal, required)
        log_: list[dict[str, Any]] = []
        if not wished or self.settings.max_fix_rounds == 0 or calls.down:
            return log_
        critique = ""
        current = versions[-1]
        original = learning_days(current.plan)
        for round_no in range(1, self.settings.max_fix_rounds + 1):
            await progress(
                status_event(
                    "fixing",
                    f"Fitting the plan to your wish (round {round_no})",
                    round=round_no,
                    wish_topics=wished,
                )
            )
            plan = current.plan
            study_days = [d.day for d in plan.schedule if d.day_type == "study"]
            # The wished topics first: a weak model tends to pick the first choice.
            movable = list(dict.fromkeys([*wished, *(t.name for t in required)]))
            schema = prompts.plan_edit_schema(movable, study_days)

            check = functools.partial(
                self._check_edit,
                plan=plan,
                original=original,
                wished=wished,
                movable=movable,
                study_days=study_days,
            )
            edit = await calls.ask(
                "plan.fix",
                prompts.edit_messages(
                    request.goal,
                    plan_lines(plan, request.hours_per_day, prompts.EDIT_PLAN_DAYS),
                    critique,
                ),
                schema,
                max_tokens=prompts.EDIT_MAX_TOKENS,
                validate=check,
            )
            if edit is None:
                log_.append({"round": round_no, "outcome": calls.status.get("plan.fix", "none")})
                break
            moves = [{"topic": m.topic, "to_day": m.to_day} for m in edit.moves]
            changed = apply_moves(plan, edit.moves)
            diff = diff_plans(plan, changed)
            if diff.is_empty:
                log_.append({"round": round_no, "moves": moves, "outcome": "no change"})
                break
            verification = verify_plan(changed, required, hours_per_day=request.hours_per_day)
            current = PlanVersion(
                version=len(versions) + 1,
                plan=changed,
                verification=verification,
                was_accepted=False,
                diff=diff,
            )
            versions.append(current)
            await _report(progress, current)
            log_.append(
                {
                    "round": round_no,
                    "moves": moves,
                    "version": current.version,
                    "outcome": "passed" if verification.is_valid else "failed",
                    "critique": "" if verification.is_valid else verification.critique,
                }
            )
            if verification.is_valid:
                break
            critique = verification.critique
        return log_

    @staticmethod
    def _check_edit(
        answer: prompts.PlanEditAnswer,
        *,
        plan: StudyPlan,
        original: dict[str, list[int]],
        wished: Sequence[str],
        movable: Sequence[str],
        study_days: Sequence[int],
    ) -> None:
        """An edit must name real topics and days and leave a wished topic somewhere new
        (compared with the scheduler's plan, so a later round may fix what an earlier broke).
        """
        prompts.check_edit(answer, movable=movable, study_days=study_days)
        after = learning_days(apply_moves(plan, answer.moves))
        if all(after.get(k) == original.get(k) for k in map(normalise_topic_name, wished)):
            raise ValueError(prompts.wish_not_met(wished))

    async def _explain(
        self, plan: StudyPlan, required: Sequence[SyllabusTopic], calls: ModelRun
    ) -> tuple[StudyPlan, dict[str, Any]]:
        """The plan with the model's words where they pass the screen."""
        learn_hours = sum(
            t.hours or 0.0 for d in plan.schedule for t in d.topics if t.kind == "learn"
        )
        facts = prompts.PlanFacts(
            exam_name=plan.exam_name,
            days=plan.total_days,
            topics=len(required),
            learn_hours=learn_hours,
            revision_days=sum(1 for d in plan.schedule if d.day_type == "revision"),
            critical=tuple(plan.critical_topics),
        )
        overview_answer = await calls.ask(
            "plan.overview",
            prompts.overview_messages(facts),
            prompts.OverviewAnswer,
            max_tokens=prompts.OVERVIEW_MAX_TOKENS,
            validate=lambda answer: _discard(prompts.screen_overview(answer, facts)),
        )
        overview = prompts.screen_overview(overview_answer, facts) if overview_answer else None

        days = [d for d in plan.schedule if d.day_type != "off"][: self.settings.prose_max_days]
        listings = [theme_listing(d) for d in days]
        themes: dict[int, str] = {}
        if days:
            themes_answer = await calls.ask(
                "plan.themes",
                prompts.theme_messages(listings),
                prompts.themes_schema(len(days)),
                max_tokens=token_budget(prompts.THEME_TOKENS_PER_DAY, len(days)),
                validate=lambda answer: _discard(prompts.screen_themes(answer, listings)),
            )
            if themes_answer is not None:
                screened = prompts.screen_themes(themes_answer, listings)
                themes = {days[i - 1].day: text for i, text in screened.items()}

        critical = {normalise_topic_name(n) for n in plan.critical_topics}
        ordered = sorted(required, key=lambda t: normalise_topic_name(t.name) not in critical)
        names = [t.name for t in ordered[: self.settings.prose_max_topics]]
        reasons: dict[str, str] = {}
        if names:
            reasons_answer = await calls.ask(
                "plan.rationale",
                prompts.rationale_messages(plan.exam_name, names),
                prompts.rationale_schema(len(names)),
                max_tokens=token_budget(prompts.RATIONALE_TOKENS_PER_TOPIC, len(names)),
                validate=lambda answer: _discard(prompts.screen_rationales(answer, names)),
            )
            if reasons_answer is not None:
                reasons = prompts.screen_rationales(reasons_answer, names)

        explained = apply_prose(plan, overview=overview, themes=themes, reasons=reasons)
        report = {
            "overview": "model" if overview else "scheduler",
            "themes_from_model": len(themes),
            "themes_asked": len(days),
            "reasons_from_model": len(reasons),
            "reasons_asked": len(names),
        }
        return explained, report


def _discard(_: object) -> None:
    """Runs a screen for its exception only (the client's ``validate`` returns nothing)."""


def status_event(stage: str, message: str, **extra: Any) -> dict[str, Any]:
    """A ``status`` progress event.

    Args:
        stage: The stage it reports (``routing``, ``scheduling``, ``cache`` ...).
        message: What is happening, in words for the student.
        **extra: More fields of the event.

    Returns:
        The event.
    """
    return {"type": "status", "stage": stage, "message": message, **extra}


async def _report(progress: ProgressSink, version: PlanVersion) -> None:
    await progress(
        {"type": "draft", "version": version.version, "plan": version.plan.model_dump(mode="json")}
    )
    await progress(
        {
            "type": "verification",
            "version": version.version,
            "result": version.verification.model_dump(mode="json"),
        }
    )
