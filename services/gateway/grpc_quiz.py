"""The quiz and learner-model gRPC API (``proto/quiz.proto``): a thin adapter over
:mod:`services.gateway.quiz_cases`, the module the HTTP routes call too.

Each method reads its typed message into the contract model through the core's validation
(:func:`~services.gateway.core.parse`, the HTTP routes' too), calls the same use case and
writes the typed answer. Questions go out as ``QuestionView`` messages, which have no field
for an answer: a drift that tried to send one would fail in :func:`to_message`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from google.protobuf.message import Message
from pydantic import BaseModel

from exammentor._proto import quiz_pb2 as pb
from exammentor._proto import quiz_pb2_grpc
from exammentor.contracts.commands import Command
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
    SavedQuizView,
)
from services.gateway import quiz_cases
from services.gateway.codec import from_message, to_message
from services.gateway.core import parse
from services.gateway.grpc_api import Context, CoreServicer, finished, pop_session_id, unary


def _with_session(
    request: Message, model: type[BaseModel], command: Command[Any, Any]
) -> tuple[Any, UUID | None]:
    """A generate request's body and its ``session_id`` (the HTTP route's query parameter)."""
    data = from_message(request)
    session_id = pop_session_id(data)
    return parse(model, data, command), session_id


class QuizApi(CoreServicer, quiz_pb2_grpc.QuizServicer):
    """The typed gRPC twin of the quiz and learner routes."""

    # ---- commands ------------------------------------------------------------------------

    @unary
    async def GenerateQuiz(  # noqa: N802 - gRPC method name
        self, request: pb.GenerateQuizRequest, context: Context
    ) -> pb.GeneratedQuiz:
        """A checked, stored quiz without answers."""
        user = self._user(context)
        body, session_id = _with_session(request, GenerateQuizRequest, QUIZ_GENERATE)
        answer = await quiz_cases.run_quiz_command(
            self._core, QUIZ_GENERATE, user, body, session_id
        )
        return finished(answer, pb.GeneratedQuiz)

    @unary
    async def GenerateQuizFromImage(  # noqa: N802 - gRPC method name
        self, request: pb.GenerateQuizFromImageRequest, context: Context
    ) -> pb.GeneratedQuiz:
        """A quiz about an image (needs a model that reads images)."""
        user = self._user(context)
        body, session_id = _with_session(
            request, GenerateQuizFromImageRequest, QUIZ_GENERATE_FROM_IMAGE
        )
        answer = await quiz_cases.run_quiz_command(
            self._core, QUIZ_GENERATE_FROM_IMAGE, user, body, session_id
        )
        return finished(answer, pb.GeneratedQuiz)

    @unary
    async def EvaluateAnswer(  # noqa: N802 - gRPC method name
        self, request: pb.EvaluateAnswerRequest, context: Context
    ) -> pb.EvaluationResult:
        """The verdict computed in code; feedback and a hint."""
        user = self._user(context)
        body = parse(EvaluateAnswerRequest, from_message(request), QUIZ_GRADE)
        answer = await quiz_cases.run_quiz_command(self._core, QUIZ_GRADE, user, body)
        return finished(answer, pb.EvaluationResult)

    @unary
    async def DiagnoseMisconception(  # noqa: N802 - gRPC method name
        self, request: pb.MisconceptionRequest, context: Context
    ) -> pb.MisconceptionDiagnosis:
        """The misconception behind a wrong answer, recorded, with a redemption question."""
        user = self._user(context)
        body = parse(MisconceptionRequest, from_message(request), QUIZ_DIAGNOSE)
        return finished(
            await quiz_cases.diagnose(self._core, user, body), pb.MisconceptionDiagnosis
        )

    @unary
    async def AnalyzePerformance(  # noqa: N802 - gRPC method name
        self, request: pb.AnalyzePerformanceRequest, context: Context
    ) -> pb.PerformanceAnalysis:
        """The performance analysis, every grade recomputed."""
        user = self._user(context)
        body = parse(AnalyzePerformanceRequest, from_message(request), QUIZ_ANALYZE)
        answer = await quiz_cases.run_quiz_command(self._core, QUIZ_ANALYZE, user, body)
        return finished(answer, pb.PerformanceAnalysis)

    @unary
    async def SaveQuiz(  # noqa: N802 - gRPC method name
        self, request: pb.SavedQuizRequest, context: Context
    ) -> pb.SavedQuizView:
        """Saves the latest quiz of a topic."""
        user = self._user(context)
        body = parse(SavedQuizRequest, from_message(request), QUIZ_SAVE)
        answer = await quiz_cases.run_quiz_command(self._core, QUIZ_SAVE, user, body)
        return finished(answer, pb.SavedQuizView)

    # ---- reads ---------------------------------------------------------------------------

    @unary
    async def GetSavedQuiz(  # noqa: N802 - gRPC method name
        self, request: pb.SavedQuizQuery, context: Context
    ) -> pb.SavedQuizView:
        """The latest saved quiz of a topic; answers only for answered questions. None saved
        is a view with no questions and no ``created_at`` (HTTP answers ``null``; a proto3
        reply cannot be null)."""
        user = self._user(context)
        query = parse(SavedQuizQuery, from_message(request))
        found = await quiz_cases.saved_quiz(self._core, user, query)
        if found is None:
            found = SavedQuizView(user_id=str(user), topic_id=query.topic_id)
        return to_message(found, pb.SavedQuizView)

    @unary
    async def GetMastery(  # noqa: N802 - gRPC method name
        self, request: pb.LearnerMasteryRequest, context: Context
    ) -> pb.LearnerMastery:
        """Mastery per concept and per topic, each with the answers behind it."""
        user = self._user(context)
        return to_message(await quiz_cases.mastery(self._core, user), pb.LearnerMastery)

    @unary
    async def ListMisconceptions(  # noqa: N802 - gRPC method name
        self, request: pb.MisconceptionQuery, context: Context
    ) -> pb.MisconceptionList:
        """The misconception records with their lifecycle state."""
        user = self._user(context)
        query = parse(MisconceptionQuery, from_message(request))
        found = await quiz_cases.misconceptions(self._core, user, query)
        return to_message({"misconceptions": quiz_cases.as_json(found)}, pb.MisconceptionList)
