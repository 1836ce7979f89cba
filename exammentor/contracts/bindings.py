"""How each declared command is reached: its HTTP routes and gRPC methods, in one table.

A :class:`Binding` stands beside its :class:`~exammentor.contracts.commands.Command` and says
which transports carry it; the gateway makes every *plain* route and method from this table
(``services/gateway/http_commands.py``, ``services/gateway/grpc_commands.py``): read the
input, let the core validate it as the command's payload, send it, answer with the result.
Adding a plain request/response command is its declaration, its handler and one entry here.

Rules the table keeps (``tests/unit/test_bindings.py`` checks them):

- every declared command has exactly one binding, and every binding at least one transport;
- a route or method marked ``stream`` or ``upload`` is written by hand in the gateway (over
  one shared helper per transport); it is listed here so that tests and docs see it;
- where a request names its study session (``session``): ``optional`` is the HTTP query
  parameter ``session_id`` (or the path's ``{session_id}``) and the gRPC request's
  ``session_id`` field; ``required`` the same, never empty; ``payload`` the payload's own
  ``session_id`` field. The gateway checks that session once per request;
- any other ``{name}`` in an HTTP path is the payload's field of that name;
- ``fixed`` payload fields are set by the route or method itself (``/pause`` is
  ``control=pause``);
- a gRPC answer carries the request id when its message has a ``request_id`` field.

Nothing here depends on a transport library: paths and method names are data, and an
answer's HTTP shape (:attr:`HttpRoute.view`) is a pure function of the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from exammentor.contracts.api import EchoRequest
from exammentor.contracts.autopilot import AUTOPILOT_ANSWER, AUTOPILOT_CONTROL, AUTOPILOT_START
from exammentor.contracts.catalog import DECLARED
from exammentor.contracts.commands import PLAN_GENERATE, SYSTEM_ECHO, Command, EchoPayload
from exammentor.contracts.plan import PlanResult
from exammentor.contracts.quiz import (
    QUIZ_ANALYZE,
    QUIZ_DIAGNOSE,
    QUIZ_GENERATE,
    QUIZ_GENERATE_FROM_IMAGE,
    QUIZ_GRADE,
    QUIZ_SAVE,
)
from exammentor.contracts.tutor import (
    MAX_IMAGE_BYTES,
    MAX_MATERIAL_TEXT_CHARS,
    MAX_PDF_BYTES,
    TUTOR_CHAT_SAVE,
    TUTOR_DESCRIBE_IMAGE,
    TUTOR_EXPLAIN,
    TUTOR_EXPLAIN_IMAGE,
    TUTOR_EXTRACT_PDF_TEXT,
    TUTOR_LESSON,
    TUTOR_MATERIAL_ADD,
    TUTOR_MATERIAL_DELETE,
    TUTOR_STREAM,
)

SessionFrom = Literal["none", "optional", "required", "payload"]
Kind = Literal["plain", "stream", "upload"]
View = Callable[[Any], tuple[Any, dict[str, str]]]
"""An answer's HTTP shape: the result -> (the JSON body, headers beside ``X-Request-Id``)."""

_BASE64_SLACK = 64 * 1024
PDF_BODY_BYTES = MAX_PDF_BYTES * 4 // 3 + _BASE64_SLACK
"""Body limit of the PDF routes: the largest PDF as base64, and room for the JSON around."""
IMAGE_BODY_BYTES = MAX_IMAGE_BYTES * 4 // 3 + _BASE64_SLACK
MATERIAL_BODY_BYTES = max(PDF_BODY_BYTES, MAX_MATERIAL_TEXT_CHARS * 4 + _BASE64_SLACK)


def whole(result: BaseModel) -> tuple[Any, dict[str, str]]:
    """The result as it is (the default shape)."""
    return result.model_dump(mode="json"), {}


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP route of a command.

    ``still_running`` says how a result that did not come within the gateway's wait is
    answered: ``pending`` (202 ``{request_id, status: pending, location}``) or ``error``
    (202 with the ``still_running`` error).
    """

    method: Literal["POST", "DELETE"]
    path: str
    summary: str
    kind: Kind = "plain"
    status: int = 200
    body: bool = True
    max_body_bytes: int | None = None
    """The route's own body limit (files as base64); None: the gateway's."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    still_running: Literal["pending", "error"] = "pending"
    view: View = whole
    tag: str = ""


@dataclass(frozen=True)
class GrpcMethod:
    """One gRPC method of a command (``service`` as named in its ``proto/*.proto``)."""

    service: str
    method: str
    kind: Kind = "plain"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    proto3_required: bool = False
    """A field the payload requires, left at its proto3 value, is sent as that value (an
    empty ``overview`` is the empty string, not missing); otherwise an unset field is
    missing and the payload's default applies."""


@dataclass(frozen=True)
class Binding:
    """A command's transports.

    ``request`` is what a client sends when it is not the command's payload, with ``choose``
    making the command and its payload of it (``system.echo``: the service is in the body).
    """

    command: Command[Any, Any]
    http: tuple[HttpRoute, ...] = ()
    grpc: tuple[GrpcMethod, ...] = ()
    session: SessionFrom = "none"
    request: type[BaseModel] | None = None
    choose: Callable[[Any], tuple[Command[Any, Any], BaseModel]] | None = None

    @property
    def input(self) -> type[BaseModel]:
        """The model the client's input is validated as."""
        return self.request or self.command.payload

    def target(self, parsed: BaseModel) -> tuple[Command[Any, Any], BaseModel]:
        """The command to send for validated input, and its payload."""
        if self.choose is None:
            return self.command, parsed
        return self.choose(parsed)


# ---- answer shapes -------------------------------------------------------------------------

_CLARIFICATION = {"needs_clarification", "clarifying_question", "options", "routing"}


def _plan(result: PlanResult, *, history: bool) -> tuple[Any, dict[str, str]]:
    """A plan route's answer: the clarifying question when the planner asks one; else the
    final plan (or the whole history) with the plan's id and whether it came from cache."""
    if result.needs_clarification:
        return result.model_dump(mode="json", include=_CLARIFICATION), {}
    data = result.model_dump(mode="json")
    headers = {
        "X-Plan-Id": str(result.plan_id),
        "X-From-Cache": "true" if result.from_cache else "false",
    }
    return (data if history else data["final_plan"]), headers


def final_plan(result: PlanResult) -> tuple[Any, dict[str, str]]:
    """The verified ``StudyPlan``."""
    return _plan(result, history=False)


def plan_history(result: PlanResult) -> tuple[Any, dict[str, str]]:
    """The whole ``PlanResult``: every version, its verification and the diffs."""
    return _plan(result, history=True)


def _echo(request: EchoRequest) -> tuple[Command[Any, Any], BaseModel]:
    return SYSTEM_ECHO[request.service], EchoPayload(text=request.text)


def _autopilot_control(verb: Literal["pause", "resume", "stop"], summary: str) -> HttpRoute:
    return HttpRoute(
        "POST",
        f"/api/autopilot/{verb}/{{session_id}}",
        summary,
        body=False,
        fixed={"control": verb},
        still_running="error",
        tag="autopilot",
    )


# ---- the table -----------------------------------------------------------------------------

BINDINGS: tuple[Binding, ...] = (
    Binding(
        SYSTEM_ECHO["planner"],
        http=(
            HttpRoute(
                "POST",
                "/api/system/echo",
                "``system.echo`` through one service: the pipeline without a model.",
                tag="system",
            ),
        ),
        grpc=(GrpcMethod("StudyGateway", "Echo"),),
        request=EchoRequest,
        choose=_echo,
    ),
    Binding(
        PLAN_GENERATE,
        http=(
            HttpRoute(
                "POST",
                "/api/plan/generate",
                "A study plan (``StudyPlan``), verified.",
                view=final_plan,
                tag="plans",
            ),
            HttpRoute(
                "POST",
                "/api/plan/generate-verified",
                "The final plan after the verify-and-fix loop (``StudyPlan``).",
                view=final_plan,
                tag="plans",
            ),
            HttpRoute(
                "POST",
                "/api/plan/generate-verified-with-history",
                "The final plan with every version, its verification and the diffs.",
                view=plan_history,
                tag="plans",
            ),
            HttpRoute(
                "POST",
                "/api/plan/stream-verified",
                "NDJSON lines as the stages happen; the last is ``complete`` or ``error``.",
                kind="stream",
                tag="plans",
            ),
        ),
        grpc=(GrpcMethod("StudyGateway", "GeneratePlan", kind="stream"),),
        session="optional",
    ),
    Binding(
        QUIZ_GENERATE,
        http=(
            HttpRoute(
                "POST", "/api/quiz/generate", "A checked, stored quiz without answers.", tag="quiz"
            ),
        ),
        grpc=(GrpcMethod("Quiz", "GenerateQuiz"),),
        session="optional",
    ),
    Binding(
        QUIZ_GENERATE_FROM_IMAGE,
        http=(
            HttpRoute(
                "POST",
                "/api/quiz/generate-from-image",
                "A quiz about an image (needs a model that reads images).",
                tag="quiz",
            ),
        ),
        grpc=(GrpcMethod("Quiz", "GenerateQuizFromImage"),),
        session="optional",
    ),
    Binding(
        QUIZ_GRADE,
        http=(
            HttpRoute(
                "POST",
                "/api/quiz/evaluate",
                "The verdict computed in code; feedback and a hint.",
                tag="quiz",
            ),
        ),
        grpc=(GrpcMethod("Quiz", "EvaluateAnswer"),),
    ),
    Binding(
        QUIZ_DIAGNOSE,
        http=(
            HttpRoute(
                "POST",
                "/api/quiz/misconception",
                "The misconception behind a wrong answer, recorded, with a redemption question.",
                tag="quiz",
            ),
        ),
        grpc=(GrpcMethod("Quiz", "DiagnoseMisconception"),),
        session="payload",
    ),
    Binding(
        QUIZ_ANALYZE,
        http=(
            HttpRoute(
                "POST",
                "/api/analyze/performance",
                "The performance analysis, every grade recomputed.",
                tag="quiz",
            ),
        ),
        grpc=(GrpcMethod("Quiz", "AnalyzePerformance"),),
    ),
    Binding(
        QUIZ_SAVE,
        http=(
            HttpRoute(
                "POST", "/api/quiz/persistence", "Saves the latest quiz of a topic.", tag="quiz"
            ),
        ),
        grpc=(GrpcMethod("Quiz", "SaveQuiz"),),
    ),
    Binding(
        TUTOR_EXPLAIN,
        http=(
            HttpRoute(
                "POST",
                "/api/tutor/explain",
                "A structured explanation (``TutorExplanation`` with ``citations``).",
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "Explain"),),
    ),
    Binding(
        TUTOR_STREAM,
        http=(
            HttpRoute(
                "POST",
                "/api/tutor/stream",
                "Raw markdown chunks or typed NDJSON.",
                kind="stream",
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "StreamExplanation", kind="stream"),),
    ),
    Binding(
        TUTOR_LESSON,
        http=(
            HttpRoute(
                "POST", "/api/tutor/lesson", "A micro-lesson, streamed.", kind="stream", tag="tutor"
            ),
        ),
        grpc=(GrpcMethod("Tutor", "StreamLesson", kind="stream"),),
    ),
    Binding(
        TUTOR_EXPLAIN_IMAGE,
        http=(
            HttpRoute(
                "POST",
                "/api/tutor/explain-image",
                "``MultimodalExplanation`` of an image (422 when the model cannot see).",
                max_body_bytes=IMAGE_BODY_BYTES,
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "ExplainImage"),),
    ),
    Binding(
        TUTOR_DESCRIBE_IMAGE,
        http=(
            HttpRoute(
                "POST",
                "/api/describe-image",
                "``{description}`` of an image, to study from (422 when the model cannot see).",
                max_body_bytes=IMAGE_BODY_BYTES,
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "DescribeImage"),),
    ),
    Binding(
        TUTOR_EXTRACT_PDF_TEXT,
        http=(
            HttpRoute(
                "POST",
                "/api/extract-pdf-text",
                "``{text}``: the first 50 pages, cut at 12,000 characters.",
                max_body_bytes=PDF_BODY_BYTES,
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "ExtractPdfText"),),
    ),
    Binding(
        TUTOR_MATERIAL_ADD,
        http=(
            HttpRoute(
                "POST",
                "/api/materials",
                "Stores a PDF or a text: multipart (``file`` or ``text``, ``title``) or JSON.",
                kind="upload",
                status=201,
                max_body_bytes=MATERIAL_BODY_BYTES,
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "AddMaterial"),),
    ),
    Binding(
        TUTOR_MATERIAL_DELETE,
        http=(
            HttpRoute(
                "DELETE",
                "/api/materials/{material_id}",
                "Deletes one of the user's materials (404 for any other).",
                body=False,
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "DeleteMaterial"),),
    ),
    Binding(
        TUTOR_CHAT_SAVE,
        http=(
            HttpRoute(
                "POST",
                "/api/tutor/chat",
                "Upserts the chat of one topic (messages and the first explanation).",
                still_running="error",
                tag="tutor",
            ),
        ),
        grpc=(GrpcMethod("Tutor", "SaveChat"),),
    ),
    Binding(
        AUTOPILOT_START,
        http=(
            HttpRoute(
                "POST",
                "/api/autopilot/start",
                "Starts a timed autopilot run of the session (a new one when none is named).",
                still_running="error",
                tag="autopilot",
            ),
        ),
        grpc=(GrpcMethod("Autopilot", "Start", proto3_required=True),),
        session="optional",
    ),
    Binding(
        AUTOPILOT_CONTROL,
        http=(
            _autopilot_control(
                "pause", "Pauses the run at once; its clock and the answer wait stop."
            ),
            _autopilot_control("resume", "Resumes a paused run where it was."),
            _autopilot_control("stop", "Stops the run for good, at once."),
        ),
        grpc=(
            GrpcMethod("Autopilot", "Pause", fixed={"control": "pause"}),
            GrpcMethod("Autopilot", "Resume", fixed={"control": "resume"}),
            GrpcMethod("Autopilot", "Stop", fixed={"control": "stop"}),
        ),
        session="required",
    ),
    Binding(
        AUTOPILOT_ANSWER,
        http=(
            HttpRoute(
                "POST",
                "/api/autopilot/answer/{session_id}",
                "Answers the waiting question, by its id.",
                still_running="error",
                tag="autopilot",
            ),
        ),
        grpc=(GrpcMethod("Autopilot", "Answer", proto3_required=True),),
        session="required",
    ),
)
"""Every command's transports. A command only workers send (none yet) has no entry."""

BY_COMMAND: dict[str, Binding] = {b.command.key: b for b in BINDINGS}
"""Each binding by its command's ``name@version``."""

if len(BY_COMMAND) != len(BINDINGS):
    raise ValueError("two bindings name the same command")
_unknown = [b.command.key for b in BINDINGS if b.command not in DECLARED]
if _unknown:
    raise ValueError(f"bindings of undeclared commands: {_unknown}")
