"""``exammentor capacity``: how many replicas each worker needs, and how the database grows.

What one replica can do at once (read from :mod:`exammentor.messaging.consumer`,
:mod:`exammentor.messaging.kafka` and :mod:`exammentor.settings`): a worker process is one member of
its service's consumer group and holds up to ``EXAMMENTOR_MAX_IN_FLIGHT`` commands at once
(256 by default) from its partitions, one session's in order, different sessions' side by
side, also within one partition. So:

- one replica runs up to ``EXAMMENTOR_MAX_IN_FLIGHT`` commands at once (its model calls up
  to ``OPENAI_MAX_CONCURRENCY`` of them; the rest wait for a slot);
- a replica needs at least one partition to get work: the partition count caps the
  replicas, not the commands at once;
- the commands of one study session run one by one whatever the replica count.

The report reads, per worker service, from the real sources:

- Kafka (admin client): the command topic's partitions, the consumer group's members and
  its lag (end offset minus committed, as ``exammentor smoke`` reads it);
- Postgres (``requests``, every user's, through :func:`exammentor.messaging.pipeline.request_load`):
  commands per kind in the window, how many failed, p50/p95 of created-to-completed time,
  the arrival rate, and the mean number of commands in flight (seconds in flight within the
  window over the window's length, Little's law). A command's time in flight includes its
  wait in Kafka: when commands queue, the figure is higher than the consumers' busy time,
  which errs towards more replicas, as a queue asks for;
- the database's size and its tables' sizes and rows, so storage growth is visible.

The recommendation per service (:func:`recommend`): commands to run at once = mean in flight
/ target utilisation, replicas = that / commands in flight per replica, rounded up, at least
1; and a warning when that is more replicas than the topic has partitions, since replicas
past that get no work: partitions come first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from pydantic_settings import BaseSettings, SettingsConfigDict

from exammentor.contracts.kafka_topics import SERVICES, command_topic
from exammentor.db import Connection
from exammentor.messaging import pipeline
from exammentor.messaging.topic_admin import consumer_lag
from exammentor.settings import KafkaSettings, WorkerSettings

EXACT_COUNT_MAX_BYTES = 8 * 1024 * 1024
"""Tables up to this size are counted exactly; larger ones report the planner's estimate
(``pg_class.reltuples``), which a full count of a large, busy table is not worth."""


class _WorkerLimits(BaseSettings):
    """``EXAMMENTOR_MAX_IN_FLIGHT`` as a worker reads it (:class:`WorkerSettings`)."""

    model_config = SettingsConfigDict(env_prefix="EXAMMENTOR_", extra="ignore")

    max_in_flight: int = WorkerSettings.model_fields["max_in_flight"].default


class CapacityError(Exception):
    """The report cannot be made truthfully (what to do is in the message)."""


@dataclass(frozen=True)
class Recommendation:
    """What a service needs for its load at the target utilisation.

    Attributes:
        commands_at_once: Commands it should be able to run at once.
        replicas: Replicas that hold that many in flight, at least 1.
        useful_replicas: The most replicas that all get partitions (None: topic unknown).
        warning: Set when the topic has too few partitions for the replicas needed.
    """

    commands_at_once: int
    replicas: int
    useful_replicas: int | None
    warning: str | None


def _ceil(value: float) -> int:
    # Rounded first so that 2.1 / (3 * 0.7), 1.0000000000000002 in floats, stays 1.
    return math.ceil(round(value, 9))


def recommend(
    in_flight: float,
    *,
    in_flight_per_replica: int,
    partitions: int | None,
    target_utilisation: float,
) -> Recommendation:
    """Replicas for a mean of ``in_flight`` commands at once, each replica filled to
    ``target_utilisation`` of its ``in_flight_per_replica`` at most.

    Args:
        in_flight: Mean commands in flight over the window.
        in_flight_per_replica: ``EXAMMENTOR_MAX_IN_FLIGHT``: commands one replica holds.
        partitions: Partitions of the command topic (None when it is missing).
        target_utilisation: Share of each replica's commands in flight the load may fill,
            in (0, 1].

    Raises:
        ValueError: A utilisation outside (0, 1] or less than one command per replica.
    """
    if not 0 < target_utilisation <= 1:
        raise ValueError(f"target utilisation {target_utilisation} is not in (0, 1]")
    if in_flight_per_replica < 1:
        raise ValueError(f"{in_flight_per_replica} commands per replica: want at least 1")
    at_once = max(1, _ceil(in_flight / target_utilisation))
    replicas = max(1, _ceil(in_flight / (in_flight_per_replica * target_utilisation)))
    if partitions is None:
        return Recommendation(at_once, replicas, None, "the command topic is missing")
    warning = None
    if replicas > partitions:
        warning = (
            f"needs {replicas} replicas but the topic has {partitions} partitions (a replica "
            f"without one gets no work): add partitions first; replicas past {partitions} "
            "get no work"
        )
    return Recommendation(at_once, replicas, partitions, warning)


def mean_in_flight(busy_seconds: float, window: timedelta) -> float:
    """Mean commands in flight: their seconds in flight within the window over its length."""
    return busy_seconds / window.total_seconds()


def per_minute(count: int, window: timedelta) -> float:
    """Arrivals per minute over the window."""
    return count * 60 / window.total_seconds()


@dataclass(frozen=True)
class KindLoad:
    """Requests of one command kind (or of all a service's kinds) in the window."""

    kind: str
    commands: int
    failed: int
    p50_s: float | None
    p95_s: float | None
    busy_s: float


@dataclass(frozen=True)
class ConsumerGroup:
    """A service's command topic and consumer group, as the broker reports them."""

    topic: str
    group: str
    partitions: int | None
    """None when the topic does not exist."""
    consumers: int
    lag: int | None
    """None when the topic does not exist."""


@dataclass(frozen=True)
class ServiceLoad:
    """One worker service: its group, its load in the window, and what it needs."""

    service: str
    group: ConsumerGroup
    total: KindLoad
    """All the service's commands (``kind`` is ``*``)."""
    kinds: list[KindLoad]
    window: timedelta
    in_flight_per_replica: int
    target_utilisation: float

    @property
    def in_flight(self) -> float:
        """Mean commands in flight over the window."""
        return mean_in_flight(self.total.busy_s, self.window)

    @property
    def replicas(self) -> int:
        """Replicas running now: the group's members (one consumer per replica)."""
        return self.group.consumers

    @property
    def recommendation(self) -> Recommendation:
        """Replicas for this load."""
        return recommend(
            self.in_flight,
            in_flight_per_replica=self.in_flight_per_replica,
            partitions=self.group.partitions,
            target_utilisation=self.target_utilisation,
        )

    def as_json(self) -> dict[str, Any]:
        """The service as ``--json`` prints it."""
        advice = self.recommendation
        return {
            "service": self.service,
            "topic": self.group.topic,
            "group": self.group.group,
            "partitions": self.group.partitions,
            "consumers": self.group.consumers,
            "replicas": self.replicas,
            "lag": self.group.lag,
            **self._load_json(self.total),
            "kinds": [{"kind": k.kind, **self._load_json(k)} for k in self.kinds],
            "recommendation": {
                "commands_at_once": advice.commands_at_once,
                "replicas": advice.replicas,
                "useful_replicas": advice.useful_replicas,
                "warning": advice.warning,
            },
        }

    def _load_json(self, load: KindLoad) -> dict[str, Any]:
        return {
            "commands": load.commands,
            "failed": load.failed,
            "arrivals_per_minute": per_minute(load.commands, self.window),
            "p50_s": load.p50_s,
            "p95_s": load.p95_s,
            "busy_s": load.busy_s,
            "in_flight": mean_in_flight(load.busy_s, self.window),
        }


@dataclass(frozen=True)
class TableSize:
    """One table's size on disk (indexes and TOAST included) and its rows."""

    table: str
    bytes: int
    rows: int | None
    """None when the planner has no estimate yet (never analysed)."""
    exact: bool


@dataclass(frozen=True)
class DatabaseSize:
    """The database's size and its tables, largest first."""

    name: str
    bytes: int
    tables: list[TableSize]


@dataclass(frozen=True)
class CapacityReport:
    """Everything ``exammentor capacity`` prints."""

    since: datetime
    until: datetime
    in_flight_per_replica: int
    target_utilisation: float
    services: list[ServiceLoad]
    database: DatabaseSize
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as ``--json`` prints it."""
        return {
            "window": {
                "since": self.since.isoformat(),
                "until": self.until.isoformat(),
                "hours": (self.until - self.since).total_seconds() / 3600,
            },
            "in_flight_per_replica": self.in_flight_per_replica,
            "target_utilisation": self.target_utilisation,
            "services": [s.as_json() for s in self.services],
            "database": {
                "name": self.database.name,
                "bytes": self.database.bytes,
                "tables": [
                    {"table": t.table, "bytes": t.bytes, "rows": t.rows, "rows_exact": t.exact}
                    for t in self.database.tables
                ],
            },
        }


async def consumer_group(kafka: KafkaSettings, service: str) -> ConsumerGroup:
    """The service's command topic and consumer group as the broker reports them."""
    topic = command_topic(kafka.topic_prefix, service)
    group = f"{kafka.topic_prefix}.{service}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        # One group per request: aiokafka misreads a reply describing several when one
        # of them does not exist.
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (state,) = response.to_object()["groups"]
    consumers = len(state["members"]) if state["error_code"] == 0 else 0
    if described.get("error_code", 0) or not described.get("partitions"):
        return ConsumerGroup(topic, group, None, consumers, None)
    partitions = len(described["partitions"])
    return ConsumerGroup(topic, group, partitions, consumers, await consumer_lag(kafka, service))


ALL_KINDS = "*"
"""The kind of a service's total line."""


async def _load_by_topic(
    conn: Connection, topics: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[KindLoad]]:
    """Per topic: its total first (``*``; zeros when it had no request), then each kind."""
    loads: dict[str, list[KindLoad]] = {t: [] for t in topics}
    for row in await pipeline.request_load(conn, topics, since, until):
        loads[row["topic"]].append(
            KindLoad(
                kind=row["kind"] or ALL_KINDS,
                commands=row["commands"],
                failed=row["failed"],
                p50_s=row["p50_s"],
                p95_s=row["p95_s"],
                busy_s=float(row["busy_s"]),
            )
        )
    for found in loads.values():
        if not found:
            found.append(KindLoad(ALL_KINDS, 0, 0, None, None, 0.0))
    return loads


async def database_size(conn: Connection) -> DatabaseSize:
    """The database's size and every table of its schema, largest first; small tables are
    counted, large ones estimated (:data:`EXACT_COUNT_MAX_BYTES`)."""
    name: str = await conn.fetchval("SELECT current_database()")
    total: int = await conn.fetchval("SELECT pg_database_size(current_database())")
    rows = await conn.fetch(
        "SELECT c.relname, format('%I.%I', n.nspname, c.relname) AS qualified, "
        "pg_total_relation_size(c.oid) AS bytes, c.reltuples::bigint AS estimate "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() "
        "ORDER BY bytes DESC, c.relname"
    )
    tables = []
    for r in rows:
        if r["bytes"] <= EXACT_COUNT_MAX_BYTES:
            # The name comes from the catalog, quoted by format('%I'): no injection.
            count = await conn.fetchval(f"SELECT count(*) FROM {r['qualified']}")
            tables.append(TableSize(r["relname"], r["bytes"], count, True))
        else:
            estimate = r["estimate"] if r["estimate"] >= 0 else None
            tables.append(TableSize(r["relname"], r["bytes"], estimate, False))
    return DatabaseSize(name, total, tables)


async def _refuse_without_bypass(conn: Connection) -> None:
    role: str = await conn.fetchval("SELECT current_user")
    bypass: bool = await conn.fetchval(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    if not bypass:
        raise CapacityError(
            f"the role {role} of DATABASE_URL does not bypass row-level security, so it sees "
            "no user's requests and every count would read 0: use the owner role with "
            "BYPASSRLS (or a superuser), as backups and retention do"
        )


async def capacity_report(
    dsn: str,
    kafka: KafkaSettings,
    window: timedelta,
    *,
    target_utilisation: float = 0.7,
    in_flight_per_replica: int | None = None,
) -> CapacityReport:
    """The capacity report over the last ``window`` (its end is the database's clock).

    ``in_flight_per_replica`` defaults to ``EXAMMENTOR_MAX_IN_FLIGHT`` as the workers read it
    (this process's environment, else the workers' default).

    Raises:
        CapacityError: The database role cannot see every user's requests.
        ValueError: ``window`` is not positive, or the utilisation is outside (0, 1].
    """
    if window <= timedelta(0):
        raise ValueError(f"the window must be positive, not {window}")
    if not 0 < target_utilisation <= 1:
        raise ValueError(f"target utilisation {target_utilisation} is not in (0, 1]")
    per_replica = in_flight_per_replica or _WorkerLimits().max_in_flight
    topics = [command_topic(kafka.topic_prefix, s) for s in SERVICES]
    conn = await asyncpg.connect(dsn)
    try:
        await _refuse_without_bypass(conn)
        until: datetime = await conn.fetchval("SELECT now()")
        since = until - window
        loads = await _load_by_topic(conn, topics, since, until)
        database = await database_size(conn)
    finally:
        await conn.close()
    groups = await asyncio.gather(*(consumer_group(kafka, s) for s in SERVICES))
    services = [
        ServiceLoad(
            service=service,
            group=group,
            total=loads[group.topic][0],
            kinds=loads[group.topic][1:],
            window=window,
            in_flight_per_replica=per_replica,
            target_utilisation=target_utilisation,
        )
        for service, group in zip(SERVICES, groups, strict=True)
    ]
    return CapacityReport(since, until, per_replica, target_utilisation, services, database)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    scaled = n / 1024
    for unit in ("kB", "MB", "GB"):
        if scaled < 1024 or unit == "GB":
            break
        scaled /= 1024
    return f"{scaled:.1f} {unit}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(report: CapacityReport, *, largest_tables: int = 10) -> list[str]:
    """The report as aligned lines a person reads (``--json`` is for machines)."""
    hours = (report.until - report.since).total_seconds() / 3600
    lines = [
        f"requests of the last {hours:g} h, to {report.until:%Y-%m-%d %H:%M:%S %Z}; target "
        f"utilisation {report.target_utilisation:.0%}",
        f"one replica holds {report.in_flight_per_replica} commands at once "
        "(EXAMMENTOR_MAX_IN_FLIGHT); a service at most one replica per partition",
        "",
        f"{'service':<10} {'partitions':>10} {'consumers':>9} {'replicas':>8} {'lag':>6} "
        f"{'commands':>8} {'failed':>6} {'per min':>8} {'p50 s':>7} {'p95 s':>7} "
        f"{'in flight':>9} {'needed':>6}",
    ]
    warnings = []
    for s in report.services:
        advice = s.recommendation
        lines.append(
            f"{s.service:<10} {_or_dash(s.group.partitions):>10} {s.group.consumers:>9} "
            f"{s.replicas:>8} {_or_dash(s.group.lag):>6} {_load_columns(s.total, s.window)} "
            f"{advice.replicas:>6}"
        )
        lines += [f"  {k.kind:<45} {_load_columns(k, s.window)}" for k in s.kinds]
        if advice.warning:
            warnings.append(f"{s.service}: {advice.warning}")
    lines += [
        "replicas: the group's consumers (one a replica); p50, p95: seconds from",
        "created to completed; in flight: mean commands waiting or running; needed: replicas",
        "for that at the target (REPLICAS_<SERVICE>=N make up, KEDA maxReplicaCount)",
    ]
    lines += [f"WARNING {w}" for w in warnings]
    db = report.database
    lines += [
        "",
        f"database {db.name}: {_size(db.bytes)}",
        f"{'table':<28} {'size':>10} {'rows':>12}",
    ]
    for t in db.tables[:largest_tables]:
        rows = "-" if t.rows is None else f"{'' if t.exact else '~'}{t.rows}"
        lines.append(f"{t.table:<28} {_size(t.bytes):>10} {rows:>12}")
    rest = db.tables[largest_tables:]
    if rest:
        lines.append(f"{len(rest)} smaller tables, {_size(sum(t.bytes for t in rest))} in all")
    lines += [
        "old inbox, outbox, request event and usage rows: exammentor retention run",
        f"model calls and tokens: exammentor usage --hours {hours:g}",
    ]
    return lines


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _load_columns(load: KindLoad, window: timedelta) -> str:
    return (
        f"{load.commands:>8} {load.failed:>6} {per_minute(load.commands, window):>8.2f} "
        f"{_seconds(load.p50_s):>7} {_seconds(load.p95_s):>7} "
        f"{mean_in_flight(load.busy_s, window):>9.2f}"
    )
