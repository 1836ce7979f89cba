"""The gRPC contract: each message mirrors its pydantic twin, and the proto only ever changes
compatibly against the committed descriptor set (``proto/gateway.binpb``).

The twins of the commands' messages are not listed by hand: :func:`bound_twins` reads them
from the binding table (``exammentor/contracts/bindings.py``), so one generic check covers
every bound method of every public proto: its request mirrors the command's input (less the
fields the method sets itself), its answer the command's result, and each nested message the
model its field holds. The per-proto modules (``tests/unit/*/test_proto_twins.py``) list only
the messages of reads and stream envelopes, which no command declares.

Rules checked (also written at the top of ``proto/gateway.proto``): a message has exactly its
model's fields, plus transport-only fields numbered from 20; scalar types match; a field the
model allows to be None has presence in proto (``optional`` or a message); a nested model is
its own twin. Against the baseline: no field renumbered, renamed, retyped or relabelled, none
removed without being reserved, no method removed or changed. The baseline is refreshed with
``make proto-baseline`` after an intended addition (this test says when).
"""

from __future__ import annotations

import datetime as dt
import importlib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from uuid import UUID

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import AwareDatetime, BaseModel

from exammentor._proto import autopilot_pb2, gateway_pb2, quiz_pb2, tutor_pb2
from exammentor.contracts import api, plan, sessions
from exammentor.contracts.bindings import BINDINGS
from services.gateway.grpc_commands import method_descriptor, nested_model

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_PROTOS = sorted(p.stem for p in (ROOT / "proto").glob("*.proto") if p.stem != "relay")
"""The public API's proto files; each has its committed baseline ``proto/<name>.binpb``.
(``relay.proto`` is internal: gateway and workers are deployed together.)"""
TRANSPORT_FIELDS_FROM = 20

_FILES = {"gateway": gateway_pb2, "quiz": quiz_pb2, "tutor": tutor_pb2, "autopilot": autopilot_pb2}


def bound_twins(file: str) -> dict[str, type[BaseModel]]:
    """Each message of ``proto/<file>.proto`` the binding table reaches, and its model: a
    bound method's request is the binding's input (a request whose every field the method
    fixes is a transport message), a plain method's answer is the command's result, and a
    field that holds a model holds that model's message."""
    found: dict[str, type[BaseModel]] = {}

    def add(message: Descriptor, model: type[BaseModel]) -> None:
        if message.file is not _FILES[file].DESCRIPTOR or message.name in found:
            return
        found[message.name] = model
        for fd in message.fields:
            nested = (
                nested_model(model.model_fields[fd.name].annotation)
                if (fd.name in model.model_fields and fd.message_type is not None)
                else None
            )
            if nested is not None:
                add(fd.message_type, nested)

    for binding in BINDINGS:
        for bound in binding.grpc:
            method = method_descriptor(bound)
            if set(binding.input.model_fields) - set(bound.fixed):
                add(method.input_type, binding.input)
            if not method.server_streaming:
                add(method.output_type, binding.command.result)
    return found


BOUND_TWINS = {(file, name): model for file in _FILES for name, model in bound_twins(file).items()}
"""Every message the binding table reaches, by proto file and name, with its model."""

TWINS: dict[str, type[BaseModel]] = {
    **bound_twins("gateway"),
    "Credentials": api.Credentials,
    "Token": api.Token,
    "Error": api.Error,
    "StoredRequest": api.StoredRequest,
    "RequestList": api.RequestList,
    "Topic": plan.Topic,
    "DailyPlan": plan.DailyPlan,
    "DroppedTopic": plan.DroppedTopic,
    "StudyPlan": plan.StudyPlan,
    "PrerequisiteViolation": plan.PrerequisiteViolation,
    "PlanVerification": plan.PlanVerification,
    "TopicMove": plan.TopicMove,
    "DayHoursChange": plan.DayHoursChange,
    "PlanDiff": plan.PlanDiff,
    "PlanVersion": plan.PlanVersion,
    "VerificationSummary": plan.VerificationSummary,
    "PlanResult": plan.PlanResult,
    "PlanStatus": api.PlanStatus,
    "PlanDraft": api.PlanDraft,
    "PlanCheck": api.PlanCheck,
    "StoredPlan": api.StoredPlan,
    "PlanSummary": api.PlanSummary,
    "PlanList": api.PlanList,
    "StartSessionRequest": sessions.StartSessionRequest,
    "SessionStarted": sessions.SessionStarted,
    "SessionState": sessions.SessionState,
    "SaveSessionRequest": sessions.SaveSessionRequest,
    "SessionSaved": sessions.SessionSaved,
    "Session": sessions.Session,
    "SessionList": sessions.SessionList,
    "SessionHistoryEntry": sessions.SessionHistoryEntry,
    "SessionHistory": sessions.SessionHistory,
}
"""Each message of the gateway API and the contract model it carries (the commands' from the
binding table, the rest by hand)."""

TRANSPORT_MESSAGES = {
    "RequestRef",
    "RequestListRequest",
    "RequestFollow",
    "RequestEvent",
    "PlanRef",
    "SessionRef",
    "PlanEvent",
    "PlanListRequest",
    "SessionListRequest",
}
"""Messages that exist only on the wire (ids of a path, stream envelopes, list options)."""

_INTS = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32}


def _plain(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` constraints, inside lists and unions too
    (``list[FilledText]`` is a list of str, ``AwareDatetime`` a datetime)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _plain(get_args(annotation)[0])
    if origin is list:
        return list[_plain(get_args(annotation)[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        args = [_plain(a) for a in get_args(annotation)]
        return typing.Union[tuple(args)]  # noqa: UP007 - built from a runtime tuple
    return annotation


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``| None``, and whether None was allowed."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        assert len(args) == 1, f"unions other than X | None have no proto twin: {annotation}"
        return args[0], True
    return annotation, False


def message_problems(message: Descriptor, model: type[BaseModel]) -> list[str]:
    """How ``message`` disagrees with ``model`` (empty when they are twins)."""
    found: list[str] = []
    fields = {f.name: f for f in message.fields}
    for name in model.model_fields.keys() - fields.keys():
        found.append(f"{message.name}: model field {name!r} has no proto field")
    for name, fd in fields.items():
        if name not in model.model_fields:
            if fd.number < TRANSPORT_FIELDS_FROM:
                found.append(
                    f"{message.name}.{name}: not in {model.__name__} (transport-only fields "
                    f"are numbered from {TRANSPORT_FIELDS_FROM})"
                )
            continue
        annotation, nullable = _unwrap(_plain(model.model_fields[name].annotation))
        found += _field_problems(f"{message.name}.{name}", fd, annotation, nullable)
    return found


def _field_problems(where: str, fd: FieldDescriptor, annotation: Any, nullable: bool) -> list[str]:
    repeated = fd.is_repeated
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation)
        if get_origin(item) is dict:
            ok = fd.message_type is not None and fd.message_type.full_name.endswith("ListValue")
            return [] if ok and not repeated else [f"{where}: list of objects must be ListValue"]
        if not repeated:
            return [f"{where}: a list must be repeated"]
        return _scalar_problems(where, fd, item)
    if repeated:
        return [f"{where}: repeated in proto, not a list in the model"]
    if nullable and not fd.has_presence:
        return [f"{where}: the model allows None, so proto needs presence (optional)"]
    return _scalar_problems(where, fd, annotation)


def _scalar_problems(where: str, fd: FieldDescriptor, annotation: Any) -> list[str]:
    if get_origin(annotation) is dict:
        ok = fd.message_type is not None and fd.message_type.full_name.endswith("Struct")
        return [] if ok else [f"{where}: a dict must be google.protobuf.Struct"]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if fd.message_type is None:
            return [f"{where}: a model must be a message"]
        twin = TWINS.get(fd.message_type.name)
        if twin is not None and twin is not annotation:
            return [f"{where}: message {fd.message_type.name} is not {annotation.__name__}'s twin"]
        return []
    if annotation is bool:
        wanted = {FieldDescriptor.TYPE_BOOL}
    elif annotation is int:
        wanted = _INTS
    elif annotation is float:
        wanted = {FieldDescriptor.TYPE_DOUBLE}
    elif (
        annotation in (str, UUID, dt.date, dt.datetime, AwareDatetime)
        or get_origin(annotation) is Literal
    ):
        wanted = {FieldDescriptor.TYPE_STRING}
    else:
        return [f"{where}: no proto mapping for {annotation}"]
    return [] if fd.type in wanted else [f"{where}: proto type {fd.type} for {annotation}"]


def test_every_message_is_a_twin_or_a_transport_message() -> None:
    names = set(gateway_pb2.DESCRIPTOR.message_types_by_name)
    assert names == TWINS.keys() | TRANSPORT_MESSAGES


@pytest.mark.parametrize("name", sorted(TWINS))
def test_the_message_mirrors_its_model(name: str) -> None:
    message = gateway_pb2.DESCRIPTOR.message_types_by_name[name]
    assert message_problems(message, TWINS[name]) == []


@pytest.mark.parametrize("twin", sorted(BOUND_TWINS), ids="/".join)
def test_every_bound_message_mirrors_its_commands_model(twin: tuple[str, str]) -> None:
    file, name = twin
    message = _FILES[file].DESCRIPTOR.message_types_by_name[name]
    assert message_problems(message, BOUND_TWINS[twin]) == []


def test_a_bound_method_sets_the_fields_its_request_lacks_and_nothing_else() -> None:
    for binding in BINDINGS:
        for bound in binding.grpc:
            sent = {f.name for f in method_descriptor(bound).input_type.fields}
            lacking = set(binding.input.model_fields) - sent
            assert lacking == set(bound.fixed), (bound.method, lacking)


def test_transport_messages_carry_only_transport_fields_or_ids() -> None:
    for name in TRANSPORT_MESSAGES:
        message = gateway_pb2.DESCRIPTOR.message_types_by_name[name]
        for fd in message.fields:
            is_id = fd.name.endswith("_id") and fd.type == FieldDescriptor.TYPE_STRING
            in_envelope = name in {"PlanEvent", "RequestEvent"}
            assert is_id or in_envelope or fd.number >= TRANSPORT_FIELDS_FROM, (name, fd.name)


def test_a_drift_is_found() -> None:
    """The checker itself: a field added to the model only, or typed apart, is reported."""

    class Drifted(api.PlanStatus):
        extra: int = 0

    status = gateway_pb2.DESCRIPTOR.message_types_by_name["PlanStatus"]
    assert any("extra" in p for p in message_problems(status, Drifted))

    class Retyped(BaseModel):
        stage: int
        message: str
        details: dict[str, Any]

    assert any("stage" in p for p in message_problems(status, Retyped))


# ---- compatibility against the committed descriptor set --------------------------------


def _current(name: str = "gateway") -> descriptor_pb2.FileDescriptorProto:
    module = importlib.import_module(f"exammentor._proto.{name}_pb2")
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


def _baseline(name: str = "gateway") -> descriptor_pb2.FileDescriptorProto:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (ROOT / "proto" / f"{name}.binpb").read_bytes()
    )
    return next(f for f in files.file if f.name == f"{name}.proto")


def breaking_changes(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> list[str]:
    """What ``new`` breaks of ``old`` (empty when every old client keeps working)."""
    found: list[str] = []
    new_messages = {m.name: m for m in new.message_type}
    for old_msg in old.message_type:
        new_msg = new_messages.get(old_msg.name)
        if new_msg is None:
            found.append(f"message {old_msg.name} removed")
            continue
        by_number = {f.number: f for f in new_msg.field}
        reserved_numbers = {n for r in new_msg.reserved_range for n in range(r.start, r.end)}
        for old_field in old_msg.field:
            field = by_number.get(old_field.number)
            where = f"{old_msg.name}.{old_field.name} (#{old_field.number})"
            if field is None:
                if old_field.number not in reserved_numbers:
                    found.append(f"{where} removed without reserving its number")
                if old_field.name not in new_msg.reserved_name:
                    found.append(f"{where} removed without reserving its name")
                continue
            for attr in ("name", "type", "type_name", "label", "proto3_optional"):
                if getattr(field, attr) != getattr(old_field, attr):
                    found.append(f"{where}: {attr} changed")
    new_services = {s.name: s for s in new.service}
    for old_service in old.service:
        service = new_services.get(old_service.name)
        if service is None:
            found.append(f"service {old_service.name} removed")
            continue
        methods = {m.name: m for m in service.method}
        for old_method in old_service.method:
            method = methods.get(old_method.name)
            if method is None:
                found.append(f"{old_service.name}.{old_method.name} removed")
                continue
            for attr in ("input_type", "output_type", "client_streaming", "server_streaming"):
                if getattr(method, attr) != getattr(old_method, attr):
                    found.append(f"{old_service.name}.{old_method.name}: {attr} changed")
    return found


@pytest.mark.parametrize("name", PUBLIC_PROTOS)
def test_the_proto_is_compatible_with_the_committed_baseline(name: str) -> None:
    assert breaking_changes(_baseline(name), _current(name)) == []


@pytest.mark.parametrize("name", PUBLIC_PROTOS)
def test_the_baseline_is_current(name: str) -> None:
    # Additions are compatible, but the baseline must include them, or a later removal of a
    # new field would go unseen.
    assert breaking_changes(_current(name), _baseline(name)) == [], "run: make proto-baseline"


def test_the_compatibility_check_finds_each_kind_of_break() -> None:
    old = _current()
    retyped = _current()
    msg = next(m for m in retyped.message_type if m.name == "Topic")
    next(f for f in msg.field if f.name == "hours").type = FieldDescriptor.TYPE_FLOAT
    renumbered = _current()
    msg = next(m for m in renumbered.message_type if m.name == "Token")
    next(f for f in msg.field if f.name == "user_id").number = 9
    removed = _current()
    msg = next(m for m in removed.message_type if m.name == "Credentials")
    del msg.field[1]
    streaming = _current()
    next(m for m in streaming.service[0].method if m.name == "GetPlan").server_streaming = True
    assert any("hours" in p and "type" in p for p in breaking_changes(old, retyped))
    assert any("Token.user_id" in p for p in breaking_changes(old, renumbered))
    assert any("Credentials.password" in p for p in breaking_changes(old, removed))
    assert any("GetPlan" in p for p in breaking_changes(old, streaming))
    reserved = _current()
    msg = next(m for m in reserved.message_type if m.name == "Credentials")
    del msg.field[1]
    msg.reserved_range.add(start=2, end=3)
    msg.reserved_name.append("password")
    assert breaking_changes(old, reserved) == []
