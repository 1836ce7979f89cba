"""Command declarations: handlers register against them, refusals use declared codes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from exammentor.contracts.catalog import COMMANDS, commands_of
from exammentor.contracts.commands import (
    GATEWAY_ERRORS,
    PLAN_GENERATE,
    SYSTEM_ECHO,
    Command,
    EchoPayload,
    EchoResult,
)
from exammentor.contracts.kafka_topics import SERVICES
from exammentor.messaging.consumer import CommandRouter
from exammentor.messaging.kafka import OffsetWindow

ROOT = Path(__file__).resolve().parents[2]


def test_a_handler_for_another_services_command_fails_at_start_up() -> None:
    router = CommandRouter("tutor")
    with pytest.raises(ValueError, match="planner's command"):
        router.handle(PLAN_GENERATE)


def test_a_command_gets_one_handler() -> None:
    router = CommandRouter("quiz")
    with pytest.raises(ValueError, match="has a handler already"):
        router.handle(SYSTEM_ECHO["quiz"])


def test_every_router_answers_echo_and_names_its_commands() -> None:
    for service in SERVICES:
        router = CommandRouter(service)
        spec = router.lookup("system.echo", 1)
        assert spec is not None
        assert spec.command.service == service
        assert router.types == ["system.echo@1"]


def test_an_unknown_service_is_refused_in_the_declaration() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        Command("x.y", 1, "mailer", EchoPayload, EchoResult)  # type: ignore[arg-type]


def test_declarations_are_unique_and_their_codes_map_to_statuses() -> None:
    assert PLAN_GENERATE in commands_of("planner")
    for command in COMMANDS.values():
        assert command.declares("dead_lettered")
        for error in command.errors:
            assert 400 <= error.http_status < 600
            assert error.grpc_status.isupper()
    codes = [e.code for e in GATEWAY_ERRORS]
    assert len(codes) == len(set(codes))


def _rejected_codes(source: str) -> list[tuple[int, str]]:
    """``(line, code)`` of each ``CommandRejected("<code>", ...)`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "CommandRejected"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_refusal_a_service_writes_is_declared_by_one_of_its_commands(service: str) -> None:
    declared = {e.code for c in commands_of(service) for e in c.errors}
    undeclared = [
        f"{path.relative_to(ROOT)}:{line}: {code}"
        for path in sorted((ROOT / "services" / service).rglob("*.py"))
        for line, code in _rejected_codes(path.read_text())
        if code not in declared
    ]
    assert undeclared == []


def test_the_refusal_scan_finds_codes() -> None:
    source = 'raise CommandRejected("nope", "m")\nx = errors.CommandRejected("also", "m")'
    assert _rejected_codes(source) == [(1, "nope"), (2, "also")]


def test_every_command_and_event_keeps_its_earlier_versions() -> None:
    """A rolling update runs old and new releases side by side: a service that adds version
    N+1 of a command keeps handling N (a declaration per version, none skipped), and an
    event type keeps every earlier version's model in the registry."""
    from exammentor.contracts.events import EVENTS

    command_versions: dict[tuple[str, str], set[int]] = {}
    for service, name, version in COMMANDS:
        command_versions.setdefault((service, name), set()).add(version)
    event_versions: dict[str, set[int]] = {}
    for name, version in EVENTS:
        event_versions.setdefault(name, set()).add(version)
    for key, versions in [*command_versions.items(), *event_versions.items()]:
        assert versions == set(range(1, max(versions) + 1)), key


def test_the_committed_offset_is_the_lowest_record_not_done() -> None:
    window = OffsetWindow()
    assert window.low_water is None  # nothing taken: nothing to commit
    for offset in (10, 11, 12, 13):
        window.take(offset)
    window.done(12)
    window.done(11)
    assert (window.low_water, window.span, len(window)) == (10, 4, 2)  # 10 still runs
    window.done(10)
    assert (window.low_water, window.span) == (13, 1)
    window.done(13)
    assert (window.low_water, window.span, len(window)) == (14, 0, 0)  # all done
    window.done(13)  # a second report changes nothing
    assert window.low_water == 14


def test_records_are_taken_in_offset_order() -> None:
    window = OffsetWindow()
    window.take(5)
    with pytest.raises(ValueError, match="offset 4 taken after 5"):
        window.take(4)
