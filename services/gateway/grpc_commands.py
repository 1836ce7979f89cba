"""The command methods of the gRPC API, made from the binding table
(:data:`~exammentor.contracts.bindings.BINDINGS`).

A plain method reads its request message as a dict (the ``session_id`` field taken out as
the command's study session when the binding says so), hands it to
:meth:`~services.gateway.core.GatewayCore.run` with the ``idempotency-key`` metadata, and
answers with the result as the method's output message (with the request id when that
message has a ``request_id`` field). The core validates the input as the command's payload,
the same validation HTTP bodies go through.
"""

from __future__ import annotations

from typing import Any, TypeVar, get_args

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel

from exammentor._proto import autopilot_pb2, gateway_pb2, quiz_pb2, tutor_pb2
from exammentor.contracts.bindings import BINDINGS, Binding, GrpcMethod
from services.gateway.codec import from_message, to_message
from services.gateway.grpc_base import Context, CoreServicer, call_key, pop_session_id, unary

S = TypeVar("S", bound=type[CoreServicer])

SERVICES = {
    s.name: s
    for module in (gateway_pb2, quiz_pb2, tutor_pb2, autopilot_pb2)
    for s in module.DESCRIPTOR.services_by_name.values()
}
"""Every public gRPC service by its name in the proto files."""


def method_descriptor(method: GrpcMethod) -> MethodDescriptor:
    """The proto declaration of a bound method (KeyError: the proto has no such method)."""
    found: MethodDescriptor = SERVICES[method.service].methods_by_name[method.method]
    return found


def request_fields(message: Message, model: type[BaseModel]) -> dict[str, Any]:
    """A request message as a dict for ``model``: what the codec reads (fields left at their
    proto3 value are left out, so the model's defaults apply), plus the proto3 value of every
    field the model *requires* (an empty ``overview`` is the empty string, not missing)."""
    full = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _with_required(from_message(message), full, model)


def _with_required(
    sparse: dict[str, Any], full: dict[str, Any], model: type[BaseModel]
) -> dict[str, Any]:
    for name, info in model.model_fields.items():
        if name not in full:
            continue
        if name not in sparse:
            if info.is_required():
                sparse[name] = full[name]
            continue
        nested = nested_model(info.annotation)
        if nested is None:
            continue
        if isinstance(sparse[name], dict):
            sparse[name] = _with_required(sparse[name], full[name], nested)
        elif isinstance(sparse[name], list):
            sparse[name] = [
                _with_required(item, whole, nested) if isinstance(item, dict) else item
                for item, whole in zip(sparse[name], full[name], strict=True)
            ]
    return sparse


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (alone, in a list or with None), if it holds one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = nested_model(arg)
        if found is not None:
            return found
    return None


def _method(binding: Binding, bound: GrpcMethod) -> Any:
    output = message_factory.GetMessageClass(method_descriptor(bound).output_type)
    carries_id = "request_id" in output.DESCRIPTOR.fields_by_name

    async def call(self: CoreServicer, request: Message, context: Context) -> Message:
        user = self._user(context)
        data = (
            request_fields(request, binding.input)
            if bound.proto3_required
            else from_message(request)
        )
        session_id = None
        if binding.session in ("optional", "required"):
            session_id = pop_session_id(data, required=binding.session == "required")
        data.update(bound.fixed)
        answer = await self._core.run(
            binding, user, data, idempotency_key=call_key(context), session_id=session_id
        )
        extra = {"request_id": str(answer.request_id)} if carries_id else {}
        return to_message(answer.finished(), output, **extra)

    call.__name__ = call.__qualname__ = bound.method
    call.__doc__ = binding.command.summary
    return unary(call)


def with_commands(servicer: S) -> S:
    """Adds to a servicer class the plain methods the binding table gives its service."""
    for binding in BINDINGS:
        for bound in binding.grpc:
            if bound.service == servicer.SERVICE and bound.kind == "plain":
                setattr(servicer, bound.method, _method(binding, bound))
    return servicer
