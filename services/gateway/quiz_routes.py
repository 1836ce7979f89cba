"""The quiz's read routes of the HTTP API, with the original's shapes (the quiz's commands,
``POST /api/quiz/generate`` ..., are made from ``exammentor/contracts/bindings.py``):

- ``GET /api/quiz/persistence``: the latest saved quiz of a topic (``null`` when none was
  saved);
- ``GET /api/learner/mastery`` and ``GET /api/learner/misconceptions?state=``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from exammentor.contracts.quiz import MisconceptionQuery, SavedQuizQuery
from services.gateway.http_base import GatewayState, JsonResponse, User
from services.gateway.inputs import parse


def quiz_router(state: GatewayState) -> APIRouter:
    """The quiz's read routes of one gateway instance.

    Args:
        state: What the routes use.

    Returns:
        The router, to include in the application.
    """
    router = APIRouter(tags=["quiz"])
    core = state.core

    @router.get("/api/quiz/persistence")
    async def saved_quiz(user: User, request: Request) -> Response:
        """The latest saved quiz of a topic, answers only for answered questions; JSON
        ``null`` when none was saved (the original's answer, which its page tests for)."""
        query = parse(SavedQuizQuery, dict(request.query_params))
        found = await core.saved_quiz(user, query)
        return JsonResponse(None if found is None else found.model_dump(mode="json"))

    @router.get("/api/learner/mastery")
    async def mastery(user: User) -> Response:
        """Mastery per concept and per topic, each with the answers behind it."""
        return JsonResponse((await core.mastery(user)).model_dump(mode="json"))

    @router.get("/api/learner/misconceptions")
    async def misconceptions(user: User, request: Request) -> Response:
        """The misconception records with their lifecycle state."""
        query = parse(MisconceptionQuery, dict(request.query_params))
        found = await core.misconceptions(user, query)
        return JsonResponse({"misconceptions": [m.model_dump(mode="json") for m in found]})

    return router
