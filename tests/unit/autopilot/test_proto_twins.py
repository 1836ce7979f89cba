"""``proto/autopilot.proto`` against its pydantic twins (``exammentor/contracts/autopilot.py``).

Each message mirrors its model field for field (the checker of ``tests/unit/test_proto.py``),
the plan a run studies is gateway.proto's ``StudyPlan`` itself (one message per model across
the public protos, so a planner's plan goes into a start request as it is), the waiting
question has no field that could carry its answer, the servicer implements every method, and
a request read the servicer's way is the model HTTP reads from the same JSON.
Compatibility against ``proto/autopilot.binpb`` is checked by ``tests/unit/test_proto.py``
with every other public proto file.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import uuid4

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from pydantic import BaseModel

from exammentor._proto import autopilot_pb2, gateway_pb2
from exammentor.contracts import autopilot, plan
from services.gateway.codec import to_message
from services.gateway.grpc_autopilot import AutopilotApi
from services.gateway.grpc_commands import request_fields as _fields
from services.gateway.reads import WatchQuery
from tests.unit.autopilot.strategies import NOW, make_plan
from tests.unit.quiz.test_proto_twins import TWINS as QUIZ_TWINS
from tests.unit.test_proto import TRANSPORT_FIELDS_FROM, bound_twins, message_problems
from tests.unit.test_proto import TWINS as GATEWAY_TWINS
from tests.unit.tutor.test_proto_twins import TWINS as TUTOR_TWINS

READ_TWINS: dict[str, type[BaseModel]] = {
    "AutopilotTopicMastery": autopilot.TopicMastery,
    "AutopilotQuestionView": autopilot.QuestionView,
    "AutopilotStep": autopilot.AutopilotStep,
    "AutopilotStatusResponse": autopilot.AutopilotStatusResponse,
    "AutopilotWatchEvent": autopilot.AutopilotWatchEvent,
    "AutopilotWatchRequest": WatchQuery,
}
"""The messages of the autopilot's reads and the models they carry (the watch request's
fields are the route's query parameters, numbered as transport fields, plus the path's id);
the commands' messages are the binding table's (:func:`~tests.unit.test_proto.bound_twins`)."""

TWINS: dict[str, type[BaseModel]] = {**bound_twins("autopilot"), **READ_TWINS}
"""Each message of the autopilot API and the model it carries."""

IMPORTED_TWINS: dict[str, type[BaseModel]] = {"exammentor.gateway.v1.StudyPlan": plan.StudyPlan}
"""Messages of other public protos that this one uses, by full name, and their models."""

TRANSPORT_MESSAGES = {"AutopilotSessionRef"}
"""Messages that exist only on the wire (the id of a route's path)."""

ANSWER_FIELDS = {"correct_option_index", "explanation", "accepted_answers"}


def test_every_message_is_a_twin_or_a_transport_message() -> None:
    names = set(autopilot_pb2.DESCRIPTOR.message_types_by_name)
    assert names == TWINS.keys() | TRANSPORT_MESSAGES


def test_every_message_is_named_for_the_autopilot() -> None:
    # The package is shared with gateway, quiz and tutor protos (TopicMastery and QuestionView
    # are taken there, by other models).
    assert all(
        name.startswith("Autopilot") for name in autopilot_pb2.DESCRIPTOR.message_types_by_name
    )


def test_no_model_has_a_second_message_in_another_public_proto() -> None:
    # A model with two messages makes a client copy one into the other field by field (as
    # the plan once was, AutopilotStudyPlan beside StudyPlan): import the other file's message.
    elsewhere = {
        id(model): name
        for twins in (GATEWAY_TWINS, QUIZ_TWINS, TUTOR_TWINS)
        for name, model in twins.items()
    }
    assert {
        name: elsewhere[id(model)] for name, model in TWINS.items() if id(model) in elsewhere
    } == {}


def test_the_start_request_carries_the_gateways_study_plan() -> None:
    request = autopilot_pb2.DESCRIPTOR.message_types_by_name["AutopilotStartRequest"]
    assert request.fields_by_name["study_plan"].message_type is gateway_pb2.StudyPlan.DESCRIPTOR
    assert {
        f.message_type.full_name
        for message in autopilot_pb2.DESCRIPTOR.message_types_by_name.values()
        for f in message.fields
        if f.message_type is not None
        and not f.message_type.full_name.startswith("google.")
        and f.message_type.file is not autopilot_pb2.DESCRIPTOR
    } == IMPORTED_TWINS.keys()


def test_a_planners_plan_goes_into_a_start_request_as_it_is() -> None:
    """What a client does: the StudyPlan of a PlanResult, put straight into the request."""
    planned = gateway_pb2.PlanResult(
        final_plan=to_message(make_plan("Kinematics", "Optics"), gateway_pb2.StudyPlan)
    )
    message = autopilot_pb2.AutopilotStartRequest(study_plan=planned.final_plan, exam_type="jee")
    read = autopilot.AutopilotStartRequest.model_validate(
        _fields(message, autopilot.AutopilotStartRequest)
    )
    assert read.study_plan == make_plan("Kinematics", "Optics")
    assert message.study_plan == planned.final_plan


@pytest.mark.parametrize("name", sorted(READ_TWINS))
def test_the_message_mirrors_its_model(name: str) -> None:
    message = autopilot_pb2.DESCRIPTOR.message_types_by_name[name]
    assert message_problems(message, TWINS[name]) == []


def test_nested_messages_are_the_twins_of_the_nested_models() -> None:
    for name, model in TWINS.items():
        message = autopilot_pb2.DESCRIPTOR.message_types_by_name[name]
        for fd in message.fields:
            if fd.message_type is None or fd.message_type.full_name.startswith("google."):
                continue
            nested = TWINS.get(fd.message_type.name) or IMPORTED_TWINS[fd.message_type.full_name]
            annotation = model.model_fields[fd.name].annotation
            assert nested.__name__ in str(annotation), (name, fd.name, annotation)


def test_transport_messages_carry_only_ids() -> None:
    for name in TRANSPORT_MESSAGES:
        message = autopilot_pb2.DESCRIPTOR.message_types_by_name[name]
        for fd in message.fields:
            is_id = fd.name.endswith("_id") and fd.type == FieldDescriptor.TYPE_STRING
            assert is_id or fd.number >= TRANSPORT_FIELDS_FROM, (name, fd.name)


def test_the_waiting_question_cannot_carry_its_answer() -> None:
    view = autopilot_pb2.DESCRIPTOR.message_types_by_name["AutopilotQuestionView"]
    assert not ANSWER_FIELDS & {f.name for f in view.fields}
    for name in ("AutopilotStatusResponse", "AutopilotWatchEvent"):
        message = autopilot_pb2.DESCRIPTOR.message_types_by_name[name]
        question = message.fields_by_name["current_question"]
        assert question.message_type.name == "AutopilotQuestionView"


def test_the_servicer_implements_every_method() -> None:
    service = autopilot_pb2.DESCRIPTOR.services_by_name["Autopilot"]
    for method in service.methods:
        assert method.name in AutopilotApi.__dict__, method.name
    watch = service.methods_by_name["Watch"]
    assert watch.server_streaming
    assert not watch.client_streaming


def test_a_drift_is_found() -> None:
    class Drifted(autopilot.QuestionView):
        correct_option_index: int = 0

    view = autopilot_pb2.DESCRIPTOR.message_types_by_name["AutopilotQuestionView"]
    assert any("correct_option_index" in p for p in message_problems(view, Drifted))
    stamped = autopilot_pb2.DESCRIPTOR.message_types_by_name["AutopilotStep"]
    assert any("number" in p for p in message_problems(stamped, autopilot.TopicMastery))


# ---- the servicer reads what HTTP reads ------------------------------------------------


def _start_body(**extra: Any) -> dict[str, Any]:
    body = make_plan("Kinematics", "Optics").model_dump(mode="json")
    body["overview"] = ""  # an empty string is a value, not a missing field
    return {"study_plan": body, **extra}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"duration_minutes": 45, "exam_type": "jee", "exam_date": "2031-05-01"},
        {"focus_topics": ["Optics"], "duration_minutes": 5},
    ],
)
def test_a_start_request_read_from_its_message_is_the_http_model(extra: dict[str, Any]) -> None:
    http = autopilot.AutopilotStartRequest.model_validate(_start_body(**extra))
    message = to_message(http, autopilot_pb2.AutopilotStartRequest, session_id=str(uuid4()))
    data = _fields(message, autopilot.AutopilotStartRequest)
    data.pop("session_id")
    assert autopilot.AutopilotStartRequest.model_validate(data) == http


def test_unset_optionals_take_the_models_defaults() -> None:
    message = autopilot_pb2.AutopilotStartRequest()
    message.study_plan.CopyFrom(
        to_message(
            plan.StudyPlan.model_validate(_start_body()["study_plan"]),
            gateway_pb2.StudyPlan,
        )
    )
    data = _fields(message, autopilot.AutopilotStartRequest)
    assert "duration_minutes" not in data
    assert "exam_date" not in data
    # A topic left at proto3 values: no kind is the model's "learn", an empty rationale is "".
    message.study_plan.schedule[0].topics[0].kind = ""
    read = autopilot.AutopilotStartRequest.model_validate(
        _fields(message, autopilot.AutopilotStartRequest)
    )
    topic = read.study_plan.schedule[0].topics[0]
    assert (topic.kind, topic.rationale) == ("learn", "")
    assert read.study_plan.overview == ""
    assert read.duration_minutes == autopilot.DEFAULT_DURATION_MINUTES
    assert read.focus_topics is None
    # An answer with no index is missing its index, not answering option 0.
    assert "answer_index" not in _fields(
        autopilot_pb2.AutopilotAnswerRequest(question_id="q"), autopilot.AutopilotAnswerRequest
    )
    assert (
        _fields(
            autopilot_pb2.AutopilotAnswerRequest(question_id="q", answer_index=0),
            autopilot.AutopilotAnswerRequest,
        )["answer_index"]
        == 0
    )


def test_a_status_survives_the_wire() -> None:
    step = autopilot.AutopilotStep(
        number=1,
        timestamp=NOW,
        action="choose_topic",
        data={"topic": "Optics", "scores": [0.5, 1], "why": None},
        reasoning="lowest mastery",
        duration_ms=3,
        status="running",
        phase="teaching",
    )
    status = autopilot.AutopilotStatusResponse(
        session_id=uuid4(),
        run_number=2,
        status="running",
        current_phase="awaiting_answer",
        current_topic="Optics",
        topics_completed=[],
        elapsed_seconds=12.5,
        target_duration_minutes=30,
        topic_mastery=[autopilot.TopicMastery(topic="Optics", score=0.25)],
        steps=[step],
        started_at=NOW,
        completed_at=None,
        current_content=None,
        current_question=autopilot.QuestionView(id="q1", text="?", options=["a", "b"]),
        awaiting_input=True,
        answer_deadline=NOW + dt.timedelta(seconds=60),
    )
    message = to_message(status, autopilot_pb2.AutopilotStatusResponse)
    # As a proto3 client reads it: scalars always, an unset optional as None.
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    fields = autopilot.AutopilotStatusResponse.model_fields
    back = autopilot.AutopilotStatusResponse.model_validate(
        {name: data.get(name) for name in fields}
    )
    # Struct numbers are doubles: 1 comes back as 1.0, which compares equal.
    assert back == status
    assert not message.HasField("completed_at")
