"""``proto/quiz.proto`` against its pydantic twins (``exammentor/contracts/quiz.py``).

Each message mirrors its model field for field (the checker of ``tests/unit/test_proto.py``),
no question sent to a student has a field that could carry its answer, and the servicer
implements every method of the service. Compatibility against ``proto/quiz.binpb`` is
checked by ``tests/unit/test_proto.py`` with every other public proto file.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, create_model

from exammentor._proto import quiz_pb2
from exammentor.contracts import quiz
from services.gateway.grpc_quiz import QuizApi
from tests.unit.test_proto import TRANSPORT_FIELDS_FROM, bound_twins, message_problems

MisconceptionList = create_model(
    "MisconceptionList", misconceptions=(list[quiz.MisconceptionRecordView], ...)
)
"""The body of ``GET /api/learner/misconceptions`` (the route wraps the list)."""

READ_TWINS: dict[str, type[BaseModel]] = {
    "SavedQuizQuery": quiz.SavedQuizQuery,
    "ConceptMasteryView": quiz.ConceptMasteryView,
    "LearnerMastery": quiz.LearnerMastery,
    "MisconceptionQuery": quiz.MisconceptionQuery,
    "MisconceptionRecordView": quiz.MisconceptionRecordView,
    "MisconceptionList": MisconceptionList,
}
"""The messages of the quiz's reads and the models they carry (the commands' messages are
the binding table's: :func:`~tests.unit.test_proto.bound_twins`)."""

TWINS: dict[str, type[BaseModel]] = {**bound_twins("quiz"), **READ_TWINS}
"""Each message of the quiz API and the model it carries."""

TRANSPORT_MESSAGES = {"LearnerMasteryRequest"}
"""Messages that exist only on the wire (a read with no parameters)."""

ANSWER_FIELDS = {"correct_option_index", "explanation", "accepted_answers"}


def test_every_message_is_a_twin_or_a_transport_message() -> None:
    names = set(quiz_pb2.DESCRIPTOR.message_types_by_name)
    assert names == TWINS.keys() | TRANSPORT_MESSAGES


@pytest.mark.parametrize("name", sorted(READ_TWINS))
def test_the_message_mirrors_its_model(name: str) -> None:
    message = quiz_pb2.DESCRIPTOR.message_types_by_name[name]
    assert message_problems(message, TWINS[name]) == []


def test_nested_messages_are_the_twins_of_the_nested_models() -> None:
    # message_problems checks a nested message only against the gateway's twins; here each
    # nested quiz message must be the twin of the model the field holds.
    for name, model in TWINS.items():
        message = quiz_pb2.DESCRIPTOR.message_types_by_name[name]
        for fd in message.fields:
            if fd.message_type is None or fd.message_type.full_name.startswith("google."):
                continue
            nested = TWINS[fd.message_type.name]
            annotation = model.model_fields[fd.name].annotation
            assert nested.__name__ in str(annotation), (name, fd.name, annotation)


def test_transport_messages_carry_nothing_but_transport_fields() -> None:
    for name in TRANSPORT_MESSAGES:
        message = quiz_pb2.DESCRIPTOR.message_types_by_name[name]
        assert all(fd.number >= TRANSPORT_FIELDS_FROM for fd in message.fields), name


def test_no_question_sent_before_answering_can_carry_its_answer() -> None:
    view = quiz_pb2.DESCRIPTOR.message_types_by_name["QuestionView"]
    assert not ANSWER_FIELDS & {f.name for f in view.fields}
    generated = quiz_pb2.DESCRIPTOR.message_types_by_name["GeneratedQuiz"]
    assert generated.fields_by_name["questions"].message_type.name == "QuestionView"
    diagnosis = quiz_pb2.DESCRIPTOR.message_types_by_name["MisconceptionDiagnosis"]
    assert diagnosis.fields_by_name["redemption_question"].message_type.name == "QuestionView"
    # Only the client sends a full Question (to save a quiz); no answer message holds one.
    service = quiz_pb2.DESCRIPTOR.services_by_name["Quiz"]
    outputs = {m.output_type for m in service.methods}
    for message in outputs:
        assert all(
            fd.message_type is None or fd.message_type.name != "Question" for fd in message.fields
        ), message.name


def test_the_servicer_implements_every_method() -> None:
    service = quiz_pb2.DESCRIPTOR.services_by_name["Quiz"]
    for method in service.methods:
        assert method.name in QuizApi.__dict__, method.name


def test_a_drift_is_found_through_the_constraints() -> None:
    class Drifted(quiz.QuestionView):
        hint: str = ""

    view = quiz_pb2.DESCRIPTOR.message_types_by_name["QuestionView"]
    assert any("hint" in p for p in message_problems(view, Drifted))
    generated = quiz_pb2.DESCRIPTOR.message_types_by_name["GeneratedQuiz"]
    assert any("questions" in p for p in message_problems(generated, quiz.LearnerMastery))
