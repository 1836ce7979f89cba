"""The same hostile inputs as the HTTP fuzz run, on gRPC: every request message of every
public gRPC method, one field at a time set to a hostile value of its type, is answered with
a declared status (INVALID_ARGUMENT, NOT_FOUND ...) or a result, never ``UNKNOWN`` or
``INTERNAL`` (an unhandled exception, or a command that crashed its worker).

A gateway and all four workers of this module's own, on the scripted model server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc import aio

from exammentor.messaging.topic_admin import ensure_topics
from exammentor.settings import LLMSettings
from services.gateway.app import GRPC_APIS, Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, ScriptedOpenAI
from tests.infra import unique_name
from tests.integration.conftest import SERVICES, Stack, register, start_worker

pytestmark = pytest.mark.integration

HOSTILE_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    " ",
    "9999-12-30",
    "-1",
    "1" * 5000,
    "{" * 3000,
    "\u202e\ufeff",
    "x" * 200_000,
]
HOSTILE_INTS = [-1, 2**31 - 1, -(2**31)]
HOSTILE_INT64S = [2**63 - 1, -(2**63)]
HOSTILE_FLOATS = [math.nan, math.inf, -math.inf, 1e308]
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE_STRUCTS = [_nested(60), {"n": math.nan}, {"\x00": "\x00"}, {"big": "x" * 100_000}]


def _values(field: FieldDescriptor) -> list[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return HOSTILE_STRINGS
    if t == FieldDescriptor.TYPE_BYTES:
        return [b"", b"\x00\xff", b"\xff" * 100_000]
    if t in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return HOSTILE_INTS
    if t in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return HOSTILE_INTS + HOSTILE_INT64S
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return [2**32 - 1]
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return [2**64 - 1]
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return HOSTILE_FLOATS
    if t == FieldDescriptor.TYPE_BOOL:
        return [True]
    if t == FieldDescriptor.TYPE_ENUM:
        return [999]
    if t == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name in (
        "google.protobuf.Struct",
    ):
        return HOSTILE_STRUCTS
    return []


def _set(msg: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(msg, field.name)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.is_repeated:
            target.add().update(value)
        else:
            target.update(value)
    elif field.is_repeated:
        target.append(value)
    else:
        setattr(msg, field.name, value)


def _hostile(descriptor: Descriptor, depth: int = 0) -> Iterator[tuple[str, Message]]:
    """(what, message) for each field of ``descriptor`` and each hostile value, nested
    messages one level down."""
    cls = message_factory.GetMessageClass(descriptor)
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and not _values(field):
            if depth >= 1 or field.message_type.GetOptions().map_entry:
                continue
            for what, inner in _hostile(field.message_type, depth + 1):
                msg = cls()
                sub = getattr(msg, field.name)
                if field.is_repeated:
                    sub.add().CopyFrom(inner)
                else:
                    sub.CopyFrom(inner)
                yield f"{field.name}.{what}", msg
            continue
        for value in _values(field):
            msg = cls()
            try:
                _set(msg, field, value)
            except (ValueError, TypeError):
                continue  # protobuf itself refuses it: no client can send it
            yield f"{field.name}={str(value)[:30]!r}", msg


def _methods() -> list[MethodDescriptor]:
    return [m for api in GRPC_APIS for m in api.descriptor.methods if not m.client_streaming]


@pytest.fixture(scope="module")
async def fuzz_stack(test_env: SessionEnv) -> AsyncIterator[Stack]:
    env = dataclasses.replace(test_env, topic_prefix=unique_name("gf"))
    await ensure_topics(env.kafka())
    model = ScriptedOpenAI(default=Content("A short answer."))
    await model.__aenter__()
    gateway = Gateway(
        env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=5
        )
    )
    await gateway.start()
    llm = LLMSettings(base_url=model.base_url, max_retries=0, repair_attempts=0, timeout_s=5)
    workers = [await start_worker(env, name, llm) for name in SERVICES]
    yield Stack(gateway, workers)
    for worker in workers:
        await worker.stop()
    await gateway.stop()
    await model.__aexit__(None, None, None)


async def _call(
    channel: aio.Channel, method: MethodDescriptor, msg: Message, auth: str
) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    out = message_factory.GetMessageClass(method.output_type)
    metadata = (("authorization", auth),)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=Message.SerializeToString,
                response_deserializer=out.FromString,
            )(msg, metadata=metadata, timeout=30)
            async for _ in stream:
                pass
        else:
            call = channel.unary_unary(
                path,
                request_serializer=Message.SerializeToString,
                response_deserializer=out.FromString,
            )
            await call(msg, metadata=metadata, timeout=30)
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_no_hostile_field_value_ends_in_unknown_or_internal(fuzz_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=fuzz_stack.base_url, timeout=60) as http:
        _, auth = await register(http)
    cases = [(m, what, msg) for m in _methods() for what, msg in _hostile(m.input_type)]
    assert len(cases) > 200
    gate = asyncio.Semaphore(8)
    async with aio.insecure_channel(
        f"127.0.0.1:{fuzz_stack.gateway.grpc_port}",
        options=[("grpc.max_send_message_length", 8 * 1024 * 1024)],
    ) as channel:

        async def one(method: MethodDescriptor, what: str, msg: Message) -> str | None:
            async with gate:
                code = await _call(channel, method, msg, auth["Authorization"])
            return f"{method.name}({what}): {code.name}" if code in FORBIDDEN else None

        found = await asyncio.gather(*(one(*case) for case in cases))
    failures = [f for f in found if f is not None]
    assert failures == [], f"{len(failures)} of {len(cases)} calls:\n" + "\n".join(failures)
