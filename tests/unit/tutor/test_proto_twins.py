"""``proto/tutor.proto`` against its pydantic twins (``exammentor/contracts/tutor.py``).

Each message mirrors its model field for field (the checker of ``tests/unit/test_proto.py``,
with constrained field types read as plain ones), the stream's envelope holds exactly the
typed stream's event kinds, every event survives the trip to a message and back, and the
servicer implements every method of the service. Compatibility against
``proto/tutor.binpb`` is checked by ``tests/unit/test_proto.py`` with every other public
proto file.
"""

from __future__ import annotations

import uuid
from typing import Any, get_args

import pytest
from google.protobuf import json_format
from pydantic import BaseModel

from exammentor._proto import tutor_pb2
from exammentor.contracts import tutor
from services.gateway.grpc_tutor import EVENT_MESSAGES, TutorApi, event_message
from services.gateway.reads import ChatQuery
from tests.unit.test_proto import TRANSPORT_FIELDS_FROM, bound_twins, message_problems

EVENT_TWINS: dict[str, type[BaseModel]] = {
    "TokenEvent": tutor.TokenEvent,
    "ResetEvent": tutor.ResetEvent,
    "CitationEvent": tutor.CitationEvent,
    "UsageEvent": tutor.UsageEvent,
    "ErrorEvent": tutor.ErrorEvent,
    "DoneEvent": tutor.DoneEvent,
}

READ_TWINS: dict[str, type[BaseModel]] = {
    "ChatQuery": ChatQuery,
    "ChatHistory": tutor.ChatHistory,
    "MaterialList": tutor.MaterialList,
    "StreamUsage": tutor.StreamUsage,
    "StreamError": tutor.StreamError,
    **EVENT_TWINS,
}
"""The messages of the tutor's reads and streams and the models they carry (the commands'
messages are the binding table's: :func:`~tests.unit.test_proto.bound_twins`)."""

TWINS: dict[str, type[BaseModel]] = {**bound_twins("tutor"), **READ_TWINS}
"""Each message of the tutor API and the model it carries."""

TRANSPORT_MESSAGES = {"MaterialListRequest", "TutorStreamEvent"}
"""Messages that exist only on the wire: a read with no parameters, the stream's envelope."""

MESSAGES = tutor_pb2.DESCRIPTOR.message_types_by_name


def test_every_message_is_a_twin_or_a_transport_message() -> None:
    assert set(MESSAGES) == TWINS.keys() | TRANSPORT_MESSAGES


@pytest.mark.parametrize("name", sorted(READ_TWINS))
def test_the_message_mirrors_its_model(name: str) -> None:
    assert message_problems(MESSAGES[name], TWINS[name]) == []


def test_nested_messages_are_the_twins_of_the_nested_models() -> None:
    # message_problems checks a nested message only against the gateway's twins; here each
    # nested tutor message must be the twin of the model the field holds.
    for name, model in TWINS.items():
        for fd in MESSAGES[name].fields:
            if fd.message_type is None:
                continue
            nested = TWINS[fd.message_type.name]
            annotation = model.model_fields[fd.name].annotation
            assert nested.__name__ in str(annotation), (name, fd.name, annotation)


def test_the_envelope_holds_each_kind_of_stream_event_under_its_kind() -> None:
    envelope = MESSAGES["TutorStreamEvent"]
    (oneof,) = envelope.oneofs
    members = {fd.name: fd.message_type.name for fd in oneof.fields}
    union, *_ = get_args(tutor.StreamEvent)
    kinds = {cls.model_fields["kind"].default: cls.__name__ for cls in get_args(union)}
    assert members == kinds
    assert {k: v.DESCRIPTOR.name for k, v in EVENT_MESSAGES.items()} == kinds
    outside = [fd for fd in envelope.fields if fd.containing_oneof is None]
    assert all(fd.number >= TRANSPORT_FIELDS_FROM for fd in outside)


def test_transport_messages_carry_nothing_but_transport_fields() -> None:
    assert all(fd.number >= TRANSPORT_FIELDS_FROM for fd in MESSAGES["MaterialListRequest"].fields)


EVENTS: list[Any] = [
    tutor.TokenEvent(seq=0, text="Velocity is "),
    tutor.ResetEvent(seq=0, reason="word_list"),
    tutor.CitationEvent(seq=1, citation=tutor.Citation(page=3, material_id=uuid.uuid4())),
    tutor.CitationEvent(seq=2, citation=tutor.Citation(page=1)),
    tutor.UsageEvent(
        seq=3, usage=tutor.StreamUsage(prompt_tokens=120, completion_tokens=40, latency_ms=812.5)
    ),
    tutor.ErrorEvent(seq=4, error=tutor.StreamError(code="model_failed", message="down")),
    tutor.DoneEvent(seq=5, partial=True),
    tutor.DoneEvent(seq=6),
    tutor.DoneEvent(seq=7, source="extract"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{e.kind}-{e.seq}")
def test_each_stream_event_survives_the_trip_through_its_message(event: Any) -> None:
    request_id = uuid.uuid4()
    message = event_message(event, request_id)
    assert message.request_id == str(request_id)
    assert message.WhichOneof("event") == event.kind
    inner = getattr(message, event.kind)
    back = json_format.MessageToDict(
        inner, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    assert tutor.STREAM_EVENT.validate_python(back) == event


def test_the_servicer_implements_every_method() -> None:
    service = tutor_pb2.DESCRIPTOR.services_by_name["Tutor"]
    for method in service.methods:
        assert method.name in TutorApi.__dict__, method.name


def test_a_drift_is_found_through_the_constraints() -> None:
    class Drifted(tutor.ExplainRequest):
        language: str = "en"

    assert any("language" in p for p in message_problems(MESSAGES["ExplainRequest"], Drifted))
    assert any(
        "steps" in p for p in message_problems(MESSAGES["GroundedExplanation"], tutor.ChatHistory)
    )
