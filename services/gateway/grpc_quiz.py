"""The quiz and learner-model gRPC API (``proto/quiz.proto``).

The quiz's commands (``GenerateQuiz`` ...) are made from the binding table
(:mod:`services.gateway.grpc_commands`); the reads are here, over the same core methods the
HTTP routes call. Questions go out as ``QuestionView`` messages, which have no field for an
answer: a drift that tried to send one would fail in :func:`to_message`.
"""

from __future__ import annotations

from exammentor._proto import quiz_pb2 as pb
from exammentor._proto import quiz_pb2_grpc
from exammentor.contracts.quiz import MisconceptionQuery, SavedQuizQuery, SavedQuizView
from services.gateway.codec import from_message, to_message
from services.gateway.grpc_base import Context, CoreServicer, unary
from services.gateway.grpc_commands import with_commands
from services.gateway.inputs import parse


@with_commands
class QuizApi(CoreServicer, quiz_pb2_grpc.QuizServicer):
    """The typed gRPC twin of the quiz and learner routes."""

    SERVICE = "Quiz"

    @unary
    async def GetSavedQuiz(  # noqa: N802 - gRPC method name
        self, request: pb.SavedQuizQuery, context: Context
    ) -> pb.SavedQuizView:
        """The latest saved quiz of a topic; answers only for answered questions. None saved
        is a view with no questions and no ``created_at`` (HTTP answers ``null``; a proto3
        reply cannot be null)."""
        user = self._user(context)
        query = parse(SavedQuizQuery, from_message(request))
        found = await self._core.saved_quiz(user, query)
        if found is None:
            found = SavedQuizView(user_id=str(user), topic_id=query.topic_id)
        return to_message(found, pb.SavedQuizView)

    @unary
    async def GetMastery(  # noqa: N802 - gRPC method name
        self, request: pb.LearnerMasteryRequest, context: Context
    ) -> pb.LearnerMastery:
        """Mastery per concept and per topic, each with the answers behind it."""
        user = self._user(context)
        return to_message(await self._core.mastery(user), pb.LearnerMastery)

    @unary
    async def ListMisconceptions(  # noqa: N802 - gRPC method name
        self, request: pb.MisconceptionQuery, context: Context
    ) -> pb.MisconceptionList:
        """The misconception records with their lifecycle state."""
        user = self._user(context)
        query = parse(MisconceptionQuery, from_message(request))
        found = await self._core.misconceptions(user, query)
        views = [m.model_dump(mode="json") for m in found]
        return to_message({"misconceptions": views}, pb.MisconceptionList)
