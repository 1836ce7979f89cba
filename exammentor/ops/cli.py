"""``exammentor``: the operators' command.

exammentor migrate up [--to N]    apply pending migrations (DATABASE_URL, owner role)
exammentor migrate down --to N    roll the schema back to version N (run each down step)
exammentor migrate status         list migrations, whether each is applied, its down step
exammentor backup create [--out FILE]                 pg_dump archive plus manifest, one tar
exammentor backup restore FILE --database-url URL     into an empty database, then verify
exammentor topics create          create the project's Kafka topics
exammentor topics list            list them with their partition counts
exammentor retention run [--dry-run]   delete old inbox, sent outbox, request events, usage
exammentor maintenance on|off|status [--reason TEXT] [--retry-after S]
                                  refuse writes at the gateway (503) while reads go on
exammentor smoke [--base-url URL] [--grpc ADDR] [--ops-port SERVICE=PORT] [--no-plan]
                                  check a deployed stack end to end (health, routes, lag)
exammentor capacity [--hours H] [--json] [--target-utilisation U]
                                  replicas each worker needs for its load, database growth
exammentor model check [--timeout S] [--json]
                                  what the configured model endpoint can do (OPENAI_*);
                                  exit 0 when chat works
exammentor demo                   run a real study flow through a running gateway
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from exammentor.logs import configure_logging
from exammentor.messaging.dead_letters import ReplayError, list_dead_letters, replay_dead_letter
from exammentor.messaging.topic_admin import all_topics, ensure_topics
from exammentor.ops import backup, maintenance, migrate, retention
from exammentor.ops.usage import usage_report
from exammentor.settings import ServiceSettings


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


_DOWN_MARKS = {
    "missing": "none",
    "ready": "yes",
    "recorded": "yes",
    "changed": "CHANGED",
    "unrecorded": "yes (not recorded)",
}


async def _migrate(args: argparse.Namespace, settings: ServiceSettings) -> int:
    dsn = settings.db.database_url
    if args.action == "up":
        applied = await migrate.upgrade(dsn, target=args.to)
        _out(f"applied: {', '.join(map(str, applied))}" if applied else "schema is current")
        return 0
    if args.action == "down":
        if args.to is None:
            _out("down needs the version to go back to: exammentor migrate down --to N")
            return 2
        undone = await migrate.downgrade(
            dsn, target=args.to, allow_changed_down=args.allow_changed_down
        )
        _out(
            f"rolled back: {', '.join(map(str, undone))}"
            if undone
            else f"schema is at {args.to} or older: nothing to roll back"
        )
        return 0
    states = await migrate.status(dsn)
    for st in states:
        mark = "applied" if st.applied_at else "pending"
        if not st.checksum_ok:
            mark = "CHANGED AFTER APPLYING"
        when = st.applied_at.isoformat() if st.applied_at else ""
        down = _DOWN_MARKS[st.down_step]
        _out(
            f"{st.migration.version:03d}  {st.migration.name:<30} {mark:<10} "
            f"down: {down:<18} {when}"
        )
    return 0 if all(st.checksum_ok for st in states) else 1


async def _backup(args: argparse.Namespace, settings: ServiceSettings) -> int:
    if args.action == "create":
        out = Path(args.out or f"exammentor-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar")
        made = await backup.create_backup(settings.db.database_url, out)
        _out(
            f"wrote {out}: schema version {made.schema_version}, {len(made.tables)} tables, "
            f"{made.total_rows} rows"
        )
        return 0
    if args.file is None or args.database_url is None:
        _out("restore needs a backup file and --database-url of an empty database")
        return 2
    restored = await backup.restore_backup(Path(args.file), args.database_url)
    _out(
        f"restored {args.file}: schema version {restored.schema_version}, "
        f"{len(restored.tables)} tables and {restored.total_rows} rows verified"
    )
    return 0


async def _topics(args: argparse.Namespace, settings: ServiceSettings) -> int:
    if args.action == "create":
        created = await ensure_topics(settings.kafka)
        _out(f"created: {', '.join(created)}" if created else "all topics exist")
        return 0
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        wanted = all_topics(settings.kafka.topic_prefix)
        described = await admin.describe_topics(wanted)
        for topic in described:
            err = topic.get("error_code", 0)
            parts = len(topic.get("partitions", []))
            _out(f"{topic['topic']:<45} {'missing' if err else f'{parts} partitions'}")
    finally:
        await admin.close()
    return 0


async def _dead_letters(args: argparse.Namespace, settings: ServiceSettings) -> int:
    dsn = settings.db.database_url
    if args.action == "list":
        letters = await list_dead_letters(dsn, limit=args.limit, pending_only=not args.all)
        for d in letters:
            replayed = f" replayed {d.replayed_at.isoformat()}" if d.replayed_at else ""
            _out(
                f"{d.id:>6}  {d.created_at.isoformat()}  {d.topic}[{d.partition}]@{d.offset}  "
                f"attempts={d.attempts}{replayed}\n        {d.reason}"
            )
        if not letters:
            _out("no dead letters")
        return 0
    if args.id is None:
        _out("replay needs the id of a dead letter (see: exammentor dead-letters list)")
        return 2
    try:
        letter = await replay_dead_letter(dsn, settings.kafka, args.id)
    except ReplayError as exc:
        _out(str(exc))
        return 1
    _out(f"replayed {letter.id} to {letter.topic}")
    return 0


async def _usage(args: argparse.Namespace, settings: ServiceSettings) -> int:
    lines = await usage_report(settings.db.database_url, timedelta(hours=args.hours))
    priced = args.prompt_price is not None or args.completion_price is not None
    prompt_price, completion_price = args.prompt_price or 0.0, args.completion_price or 0.0
    _out(
        f"{'service':<10} {'purpose':<22} {'calls':>6} {'failed':>6} {'prompt':>9} "
        f"{'completion':>10} {'mean ms':>8}" + (f" {'cost':>9}" if priced else "")
    )
    for u in lines:
        cost = f" {u.cost(prompt_price, completion_price):>9.4f}" if priced else ""
        _out(
            f"{u.service:<10} {u.purpose:<22} {u.calls:>6} {u.failed_calls:>6} "
            f"{u.prompt_tokens:>9} {u.completion_tokens:>10} {u.mean_latency_ms:>8.0f}{cost}"
        )
    total = sum(u.prompt_tokens + u.completion_tokens for u in lines)
    _out(f"{sum(u.calls for u in lines)} calls, {total} tokens in the last {args.hours:g} h")
    return 0


async def _retention(args: argparse.Namespace, settings: ServiceSettings) -> int:
    report = await retention.run_retention(
        settings.db.database_url, settings.retention, dry_run=args.dry_run
    )
    verb = "would delete" if args.dry_run else "deleted"
    for table in report:
        batches = "" if args.dry_run else f" in {table.batches} batch(es)"
        _out(f"{table.table:<15} {verb} {table.rows:>9} rows{batches} ({table.rule})")
    _out(f"{verb} {sum(t.rows for t in report)} rows in all")
    return 0


async def _maintenance(args: argparse.Namespace, settings: ServiceSettings) -> int:
    dsn = settings.db.database_url
    if args.action == "status":
        state = await maintenance.status(dsn)
    else:
        try:
            state = await maintenance.set_mode(
                dsn,
                args.action == "on",
                reason=args.reason,
                retry_after_s=args.retry_after,
                changed_by=getpass.getuser(),
            )
        except ValueError as exc:
            _out(str(exc))
            return 2
    _out(state.describe())
    return 0


async def _smoke(args: argparse.Namespace, settings: ServiceSettings) -> int:
    from exammentor.ops.smoke import SmokeTargets, run_smoke

    try:
        targets = SmokeTargets.parse(
            base_url=args.base_url,
            grpc=args.grpc,
            ops_ports=args.ops_port,
            lag_max=args.max_lag,
            plan=not args.no_plan,
        )
    except ValueError as exc:
        _out(str(exc))
        return 2
    failed = await run_smoke(targets, settings.kafka, report=_out)
    return 1 if failed else 0


async def _capacity(args: argparse.Namespace, settings: ServiceSettings) -> int:
    from aiokafka.errors import KafkaError

    from exammentor.ops.capacity import CapacityError, capacity_report, render

    try:
        report = await capacity_report(
            settings.db.database_url,
            settings.kafka,
            timedelta(hours=args.hours),
            target_utilisation=args.target_utilisation,
        )
    except CapacityError as exc:
        _out(str(exc))
        return 1
    except KafkaError as exc:
        _out(f"Kafka at {settings.kafka.bootstrap_servers}: {type(exc).__name__}: {exc}")
        return 1
    if args.json:
        _out(json.dumps(report.as_json(), indent=2))
    else:
        for line in render(report):
            _out(line)
    return 0


async def _model(args: argparse.Namespace, settings: ServiceSettings) -> int:
    from exammentor.llm.check import check_model, render

    report = await check_model(settings.llm, timeout_s=args.timeout)
    if args.json:
        _out(json.dumps(report.as_json(), indent=2))
    else:
        for line in render(report):
            _out(line)
    return 0 if report.chat_works else 1


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text}: want a number above 0")
    return value


def _utilisation(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: want a share above 0 and at most 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``exammentor``: every subcommand and its options (parsing only;
    nothing is read or started, so docs and tests can check command lines with it)."""
    parser = argparse.ArgumentParser(prog="exammentor", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mig = sub.add_parser("migrate", help="database migrations")
    mig.add_argument("action", choices=["up", "down", "status"])
    mig.add_argument("--to", type=int, default=None, help="stop at (up) or go back to this version")
    mig.add_argument(
        "--allow-changed-down",
        action="store_true",
        help="run down files edited since their migration was applied",
    )
    bak = sub.add_parser("backup", help="back up the database, or restore a backup")
    bak.add_argument("action", choices=["create", "restore"])
    bak.add_argument("file", nargs="?", default=None, help="the backup to restore")
    bak.add_argument("--out", default=None, help="the archive to write (a .tar)")
    bak.add_argument("--database-url", default=None, help="the empty database to restore into")
    top = sub.add_parser("topics", help="Kafka topics")
    top.add_argument("action", choices=["create", "list"])
    dead = sub.add_parser("dead-letters", help="inspect and replay dead-lettered commands")
    dead.add_argument("action", choices=["list", "replay"])
    dead.add_argument("id", nargs="?", type=int, default=None)
    dead.add_argument("--limit", type=int, default=50)
    dead.add_argument("--all", action="store_true", help="include replayed letters")
    usage = sub.add_parser("usage", help="model calls and tokens per service and purpose")
    usage.add_argument("--hours", type=float, default=24.0)
    usage.add_argument("--prompt-price", type=float, default=None, help="per 1k prompt tokens")
    usage.add_argument(
        "--completion-price", type=float, default=None, help="per 1k completion tokens"
    )
    keep = sub.add_parser("retention", help="delete rows past their retention age")
    keep.add_argument("action", choices=["run"])
    keep.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    maint = sub.add_parser("maintenance", help="refuse writes at the gateway for a while")
    maint.add_argument("action", choices=["on", "off", "status"])
    maint.add_argument("--reason", default=None, help="shown to clients and operators")
    maint.add_argument(
        "--retry-after",
        type=int,
        default=maintenance.DEFAULT_RETRY_AFTER_S,
        help="seconds clients are told to wait (Retry-After)",
    )
    smoke = sub.add_parser("smoke", help="post-deployment checks of a running stack")
    smoke.add_argument("--base-url", default="http://127.0.0.1:8080")
    smoke.add_argument("--grpc", default="127.0.0.1:50051")
    smoke.add_argument(
        "--ops-port",
        action="append",
        default=[],
        metavar="SERVICE=PORT",
        help="a worker's ops port (default: deploy/local/stack.sh's); repeatable",
    )
    smoke.add_argument("--max-lag", type=int, default=100, help="largest consumer lag allowed")
    smoke.add_argument("--no-plan", action="store_true", help="skip the check that needs the model")
    capacity = sub.add_parser(
        "capacity", help="replicas each worker needs for its load, and the database's size"
    )
    capacity.add_argument(
        "--hours", type=_positive, default=1.0, help="the window of requests to measure"
    )
    capacity.add_argument("--json", action="store_true", help="for machines")
    capacity.add_argument(
        "--target-utilisation",
        type=_utilisation,
        default=0.7,
        help="share of the consumers' time the load may fill (0 to 1)",
    )
    model = sub.add_parser(
        "model",
        help="check the configured model endpoint (OPENAI_BASE_URL, OPENAI_MODEL, OPENAI_API_KEY)",
        description=(
            "Calls the configured OpenAI-compatible endpoint once per capability the services "
            "use (chat, JSON schema, streaming, vision), prints what works with its latency "
            "and which features will fall back. Exit status: 0 when chat works, 1 when it "
            "does not (the services cannot use the endpoint)."
        ),
    )
    model.add_argument("action", choices=["check"])
    model.add_argument(
        "--timeout",
        type=_positive,
        default=None,
        help="seconds per call (default OPENAI_TIMEOUT_S)",
    )
    model.add_argument("--json", action="store_true", help="for machines")
    demo = sub.add_parser("demo", help="a real study flow through a running gateway")
    demo.add_argument("--gateway", default="http://127.0.0.1:8080")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``exammentor``."""
    args = build_parser().parse_args(argv)

    settings = ServiceSettings()
    configure_logging("exammentor", settings.log_level, "console")
    commands = {
        "migrate": _migrate,
        "backup": _backup,
        "topics": _topics,
        "dead-letters": _dead_letters,
        "usage": _usage,
        "retention": _retention,
        "maintenance": _maintenance,
        "smoke": _smoke,
        "capacity": _capacity,
        "model": _model,
    }
    try:
        if args.command in commands:
            return asyncio.run(commands[args.command](args, settings))
        from exammentor.ops.demo import run_demo

        return asyncio.run(run_demo(args.gateway))
    except asyncpg.UndefinedTableError as exc:
        _out(f"the schema is missing or old ({exc}): run 'exammentor migrate up'")
    except backup.BackupError as exc:
        _out(f"backup: {exc}")
    except (OSError, asyncpg.PostgresError, migrate.MigrationError) as exc:
        _out(f"{type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
