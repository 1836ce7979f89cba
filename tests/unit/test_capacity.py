"""The capacity report's arithmetic: replicas for a load, commands in flight, arrival rates,
and the lines a person reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exammentor.ops.capacity import (
    ALL_KINDS,
    CapacityReport,
    ConsumerGroup,
    DatabaseSize,
    KindLoad,
    ServiceLoad,
    TableSize,
    mean_in_flight,
    per_minute,
    recommend,
    render,
)
from exammentor.ops.cli import build_parser

HOUR = timedelta(hours=1)


def test_no_requests_still_keeps_one_replica() -> None:
    advice = recommend(0.0, in_flight_per_replica=256, partitions=6, target_utilisation=0.7)
    assert (advice.commands_at_once, advice.replicas, advice.useful_replicas) == (1, 1, 6)
    assert advice.warning is None


@pytest.mark.parametrize(
    ("in_flight", "per_replica", "utilisation", "at_once", "replicas"),
    [
        (2.1, 3, 0.7, 3, 1),  # exactly full: 2.1 / 2.1 is 1 replica, not 2 by a float's error
        (2.2, 3, 0.7, 4, 2),  # just over
        (4.2, 3, 0.7, 6, 2),
        (4.3, 3, 0.7, 7, 3),
        (0.5, 1, 1.0, 1, 1),
        (5.0, 1, 0.5, 10, 10),
    ],
)
def test_replicas_are_the_load_over_each_replicas_share_rounded_up(
    in_flight: float, per_replica: int, utilisation: float, at_once: int, replicas: int
) -> None:
    advice = recommend(
        in_flight,
        in_flight_per_replica=per_replica,
        partitions=64,
        target_utilisation=utilisation,
    )
    assert (advice.commands_at_once, advice.replicas) == (at_once, replicas)
    assert advice.warning is None


def test_more_replicas_than_partitions_asks_for_partitions_first() -> None:
    # 500 in flight at 70% of 64 a replica: 12 replicas, but 6 partitions feed only 6.
    advice = recommend(500.0, in_flight_per_replica=64, partitions=6, target_utilisation=0.7)
    assert (advice.commands_at_once, advice.replicas, advice.useful_replicas) == (715, 12, 6)
    assert advice.warning is not None
    assert "needs 12 replicas but the topic has 6 partitions" in advice.warning
    assert "replicas past 6 get no work" in advice.warning


def test_commands_at_once_are_not_bound_by_the_partitions() -> None:
    # One replica holds many commands of one partition at once (different sessions).
    advice = recommend(150.0, in_flight_per_replica=256, partitions=1, target_utilisation=0.7)
    assert (advice.commands_at_once, advice.replicas, advice.useful_replicas) == (215, 1, 1)
    assert advice.warning is None


def test_as_many_replicas_as_partitions_gives_no_warning() -> None:
    advice = recommend(4.2, in_flight_per_replica=1, partitions=6, target_utilisation=0.7)
    assert (advice.commands_at_once, advice.replicas, advice.useful_replicas) == (6, 6, 6)
    assert advice.warning is None


def test_a_missing_topic_is_a_warning_without_a_partition_bound() -> None:
    advice = recommend(1.0, in_flight_per_replica=3, partitions=None, target_utilisation=0.7)
    assert advice.useful_replicas is None
    assert advice.warning == "the command topic is missing"


@pytest.mark.parametrize("utilisation", [0.0, -0.1, 1.01])
def test_a_utilisation_outside_zero_to_one_is_refused(utilisation: float) -> None:
    with pytest.raises(ValueError, match="not in"):
        recommend(1.0, in_flight_per_replica=3, partitions=6, target_utilisation=utilisation)


def test_in_flight_is_seconds_in_flight_over_the_window() -> None:
    assert mean_in_flight(0.0, HOUR) == 0.0
    assert mean_in_flight(7200.0, HOUR) == 2.0
    assert mean_in_flight(90.0, timedelta(minutes=3)) == 0.5


def test_arrivals_are_counted_per_minute() -> None:
    assert per_minute(0, HOUR) == 0.0
    assert per_minute(120, HOUR) == 2.0
    assert per_minute(3, timedelta(seconds=30)) == 6.0


def _service(name: str, total: KindLoad, kinds: list[KindLoad], partitions: int) -> ServiceLoad:
    return ServiceLoad(
        service=name,
        group=ConsumerGroup(f"p.cmd.{name}", f"p.{name}", partitions, 2, 0),
        total=total,
        kinds=kinds,
        window=HOUR,
        in_flight_per_replica=3,
        target_utilisation=0.7,
    )


def _report() -> CapacityReport:
    echo = KindLoad("system.echo", 10, 1, 0.2, 0.9, 36.0)
    plan = KindLoad("plan.generate", 50, 0, 40.0, 90.0, 4 * 3600.0)
    idle = KindLoad(ALL_KINDS, 0, 0, None, None, 0.0)
    planner_total = KindLoad(ALL_KINDS, 60, 1, 30.0, 88.0, echo.busy_s + plan.busy_s)
    until = datetime(2026, 1, 5, 8, tzinfo=UTC)
    return CapacityReport(
        since=until - HOUR,
        until=until,
        in_flight_per_replica=3,
        target_utilisation=0.7,
        services=[
            _service("planner", planner_total, [echo, plan], partitions=6),
            _service("quiz", idle, [], partitions=6),
        ],
        database=DatabaseSize(
            "exammentor",
            50 * 1024 * 1024,
            [
                TableSize("requests", 40 * 1024 * 1024, 123_000, False),
                TableSize("users", 16 * 1024, 3, True),
            ],
        ),
    )


def test_a_service_reads_its_load_from_its_total_and_its_replicas_from_its_consumers() -> None:
    planner = _report().services[0]
    assert planner.in_flight == pytest.approx(4.01)
    assert planner.replicas == 2  # 2 consumers, one a replica
    assert planner.recommendation.replicas == 2  # 4.01 / (3 * 0.7) = 1.9
    assert planner.recommendation.warning is None
    body = planner.as_json()
    assert body["commands"] == 60
    assert body["arrivals_per_minute"] == 1.0
    assert [k["kind"] for k in body["kinds"]] == ["system.echo", "plan.generate"]
    assert body["kinds"][1]["in_flight"] == 4.0


def test_the_text_has_one_line_per_service_its_kinds_and_the_largest_tables() -> None:
    lines = render(_report())
    planner = [line for line in lines if line.startswith("planner ")]
    assert len(planner) == 1
    assert " ".join(planner[0].split()) == "planner 6 2 2 0 60 1 1.00 30.00 88.00 4.01 2"
    quiz = [line for line in lines if line.startswith("quiz ")]
    assert " ".join(quiz[0].split()) == "quiz 6 2 2 0 0 0 0.00 - - 0.00 1"
    assert "  plan.generate" in "\n".join(lines)
    # Each kind's figures sit under the service's columns.
    header = next(line for line in lines if line.startswith("service "))
    kind = next(line for line in lines if line.startswith("  plan.generate"))
    assert kind.index(" 50 ") + 3 == header.index("commands") + len("commands")
    assert "database exammentor: 50.0 MB" in lines
    assert any(line.split() == ["requests", "40.0", "MB", "~123000"] for line in lines)
    assert any(line.split() == ["users", "16.0", "kB", "3"] for line in lines)
    assert not any(line.startswith("WARNING") for line in lines)


def test_a_service_short_of_partitions_is_warned_about() -> None:
    report = _report()
    busy = KindLoad(ALL_KINDS, 500, 0, 30.0, 80.0, 5 * 3600.0)
    report.services[1] = _service("quiz", busy, [], partitions=2)
    warnings = [line for line in render(report) if line.startswith("WARNING")]
    assert warnings == [
        "WARNING quiz: needs 3 replicas but the topic has 2 partitions (a replica without one "
        "gets no work): add partitions first; replicas past 2 get no work"
    ]


def test_the_command_line_takes_the_window_the_format_and_the_utilisation() -> None:
    args = build_parser().parse_args(
        ["capacity", "--hours", "6", "--json", "--target-utilisation", "0.5"]
    )
    assert (args.command, args.hours, args.json, args.target_utilisation) == (
        "capacity",
        6.0,
        True,
        0.5,
    )
    defaults = build_parser().parse_args(["capacity"])
    assert (defaults.hours, defaults.json, defaults.target_utilisation) == (1.0, False, 0.7)
    for bad in (
        ["--hours", "0"],
        ["--hours", "inf"],
        ["--target-utilisation", "0"],
        ["--target-utilisation", "2"],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["capacity", *bad])
