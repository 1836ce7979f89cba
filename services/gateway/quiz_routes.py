"""The quiz and learner-model routes of the HTTP API, with the original's shapes.

- ``POST /api/quiz/generate`` and ``/api/quiz/generate-from-image``: a stored ``Quiz``
  whose questions carry ids and no answers (``quiz.generate`` / ``quiz.generate_from_image``);
- ``POST /api/quiz/evaluate``: ``{is_correct, feedback, misconception, hint_for_similar}``
  computed from the stored question when the body names a ``question_id`` (``quiz.grade``);
- ``POST /api/quiz/misconception``: the diagnosis with a stored redemption question
  (``quiz.diagnose``; a ``session_id`` in the body logs it to the session);
- ``POST /api/analyze/performance``: grades recomputed from the answer log (``quiz.analyze``);
- ``GET/POST /api/quiz/persistence``: the latest saved quiz of a topic (``null`` when none
  was saved; a question to save without its answer is ``answers_withheld``);
- ``GET /api/learner/mastery`` and ``GET /api/learner/misconceptions?state=``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from exammentor.contracts.quiz import (
    QUIZ_ANALYZE,
    QUIZ_DIAGNOSE,
    QUIZ_GENERATE,
    QUIZ_GENERATE_FROM_IMAGE,
    QUIZ_GRADE,
    QUIZ_SAVE,
    AnalyzePerformanceRequest,
    EvaluateAnswerRequest,
    GenerateQuizFromImageRequest,
    GenerateQuizRequest,
    MisconceptionQuery,
    MisconceptionRequest,
    SavedQuizQuery,
    SavedQuizRequest,
)
from services.gateway import quiz_cases
from services.gateway.core import CommandAnswer, parse
from services.gateway.http_base import (
    GatewayState,
    User,
    body_schema,
    json_body,
    pending_response,
)

SessionId = Annotated[
    UUID | None, Query(description="The study session the quiz belongs to (optional).")
]


def _answer(found: CommandAnswer[Any]) -> Response:
    if found.result is None:
        return pending_response(found.request_id)
    result: BaseModel = found.result
    return JSONResponse(
        result.model_dump(mode="json"), headers={"X-Request-Id": str(found.request_id)}
    )


def quiz_router(state: GatewayState) -> APIRouter:
    """The quiz routes of one gateway instance.

    Args:
        state: What the routes use.

    Returns:
        The router, to include in the application.
    """
    router = APIRouter(tags=["quiz"])
    core = state.core

    @router.post("/api/quiz/generate", openapi_extra=body_schema(GenerateQuizRequest))
    async def generate(
        user: User,
        body: Annotated[
            GenerateQuizRequest, Depends(json_body(GenerateQuizRequest, QUIZ_GENERATE))
        ],
        session_id: SessionId = None,
    ) -> Response:
        """A checked, stored quiz without answers."""
        return _answer(
            await quiz_cases.run_quiz_command(core, QUIZ_GENERATE, user, body, session_id)
        )

    @router.post(
        "/api/quiz/generate-from-image",
        openapi_extra=body_schema(GenerateQuizFromImageRequest),
    )
    async def generate_from_image(
        user: User,
        body: Annotated[
            GenerateQuizFromImageRequest,
            Depends(json_body(GenerateQuizFromImageRequest, QUIZ_GENERATE_FROM_IMAGE)),
        ],
        session_id: SessionId = None,
    ) -> Response:
        """A quiz about an image (needs a model that reads images)."""
        return _answer(
            await quiz_cases.run_quiz_command(
                core, QUIZ_GENERATE_FROM_IMAGE, user, body, session_id
            )
        )

    @router.post("/api/quiz/evaluate", openapi_extra=body_schema(EvaluateAnswerRequest))
    async def evaluate(
        user: User,
        body: Annotated[
            EvaluateAnswerRequest, Depends(json_body(EvaluateAnswerRequest, QUIZ_GRADE))
        ],
    ) -> Response:
        """The verdict computed in code; feedback and a hint."""
        return _answer(await quiz_cases.run_quiz_command(core, QUIZ_GRADE, user, body))

    @router.post("/api/quiz/misconception", openapi_extra=body_schema(MisconceptionRequest))
    async def misconception(
        user: User,
        body: Annotated[
            MisconceptionRequest, Depends(json_body(MisconceptionRequest, QUIZ_DIAGNOSE))
        ],
    ) -> Response:
        """The misconception behind a wrong answer, recorded, with a redemption question."""
        return _answer(await quiz_cases.diagnose(core, user, body))

    @router.post("/api/analyze/performance", openapi_extra=body_schema(AnalyzePerformanceRequest))
    async def analyze_performance(
        user: User,
        body: Annotated[
            AnalyzePerformanceRequest, Depends(json_body(AnalyzePerformanceRequest, QUIZ_ANALYZE))
        ],
    ) -> Response:
        """The performance analysis, every grade recomputed."""
        return _answer(await quiz_cases.run_quiz_command(core, QUIZ_ANALYZE, user, body))

    @router.post("/api/quiz/persistence", openapi_extra=body_schema(SavedQuizRequest))
    async def save_quiz(
        user: User,
        body: Annotated[SavedQuizRequest, Depends(json_body(SavedQuizRequest, QUIZ_SAVE))],
    ) -> Response:
        """Saves the latest quiz of a topic."""
        return _answer(await quiz_cases.run_quiz_command(core, QUIZ_SAVE, user, body))

    @router.get("/api/quiz/persistence")
    async def saved_quiz(user: User, request: Request) -> Response:
        """The latest saved quiz of a topic, answers only for answered questions; JSON
        ``null`` when none was saved (the original's answer, which its page tests for)."""
        query = parse(SavedQuizQuery, dict(request.query_params))
        found = await quiz_cases.saved_quiz(core, user, query)
        return JSONResponse(None if found is None else found.model_dump(mode="json"))

    @router.get("/api/learner/mastery")
    async def mastery(user: User) -> Response:
        """Mastery per concept and per topic, each with the answers behind it."""
        return JSONResponse((await quiz_cases.mastery(core, user)).model_dump(mode="json"))

    @router.get("/api/learner/misconceptions")
    async def misconceptions(user: User, request: Request) -> Response:
        """The misconception records with their lifecycle state."""
        query = parse(MisconceptionQuery, dict(request.query_params))
        found = await quiz_cases.misconceptions(core, user, query)
        return JSONResponse({"misconceptions": quiz_cases.as_json(found)})

    return router
