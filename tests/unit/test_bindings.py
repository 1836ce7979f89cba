"""The binding table (``exammentor/contracts/bindings.py``) agrees with the catalog, the
protos and the gateway that is made from it."""

from __future__ import annotations

import pytest

from exammentor.contracts.bindings import BINDINGS, BY_COMMAND, GrpcMethod
from exammentor.contracts.catalog import DECLARED
from services.gateway.app import GRPC_APIS
from services.gateway.grpc_commands import SERVICES, method_descriptor
from services.gateway.http_commands import command_router

BOUND_METHODS = [m for b in BINDINGS for m in b.grpc]


def test_every_declared_command_is_bound_once() -> None:
    assert {c.key for c in DECLARED} == set(BY_COMMAND)


def test_every_binding_reaches_the_command_by_some_transport() -> None:
    assert all(b.http or b.grpc for b in BINDINGS)


@pytest.mark.parametrize("bound", BOUND_METHODS, ids=lambda m: f"{m.service}/{m.method}")
def test_a_bound_method_is_in_its_proto_and_streams_when_declared_so(bound: GrpcMethod) -> None:
    descriptor = method_descriptor(bound)
    assert descriptor.server_streaming == (bound.kind == "stream")


def test_every_plain_route_is_made_and_nothing_else() -> None:
    made = {(m, r.path) for r in command_router.routes for m in r.methods}  # type: ignore[attr-defined]
    declared = {
        (route.method, route.path) for b in BINDINGS for route in b.http if route.kind == "plain"
    }
    assert made == declared


def test_a_route_names_its_session_where_the_binding_takes_it() -> None:
    for binding in BINDINGS:
        for route in binding.http:
            in_path = "{session_id}" in route.path
            assert in_path == (binding.session == "required"), route.path
            for name in (p[1:-1] for p in route.path.split("/") if p.startswith("{")):
                assert name == "session_id" or name in binding.input.model_fields, route.path


def test_each_servicer_implements_every_method_of_its_service() -> None:
    for api in GRPC_APIS:
        servicer: type = api.servicer  # type: ignore[assignment]
        generated = next(c for c in servicer.__mro__ if c.__module__.endswith("_pb2_grpc"))
        for method in SERVICES[api.descriptor.name].methods:
            assert getattr(servicer, method.name) is not getattr(generated, method.name), (
                f"{api.descriptor.name}/{method.name} is not implemented"
            )
