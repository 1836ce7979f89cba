"""``exammentor``: the operators' command.

exammentor migrate up [--to N]    apply pending migrations (DATABASE_URL, owner role)
exammentor migrate status         list migrations and whether each is applied
exammentor topics create          create the project's Kafka topics
exammentor topics list            list them with their partition counts
exammentor demo                   run a real study flow through a running gateway
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from exammentor import migrate
from exammentor.dead_letters import ReplayError, list_dead_letters, replay_dead_letter
from exammentor.logs import configure_logging
from exammentor.settings import ServiceSettings
from exammentor.topics import all_topics, ensure_topics
from exammentor.usage import usage_report


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


async def _migrate(args: argparse.Namespace, settings: ServiceSettings) -> int:
    dsn = settings.db.database_url
    if args.action == "up":
        applied = await migrate.upgrade(dsn, target=args.to)
        _out(f"applied: {', '.join(map(str, applied))}" if applied else "schema is current")
        return 0
    states = await migrate.status(dsn)
    for st in states:
        mark = "applied" if st.applied_at else "pending"
        if not st.checksum_ok:
            mark = "CHANGED AFTER APPLYING"
        when = st.applied_at.isoformat() if st.applied_at else ""
        _out(f"{st.migration.version:03d}  {st.migration.name:<30} {mark:<10} {when}")
    return 0 if all(st.checksum_ok for st in states) else 1


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``exammentor``."""
    parser = argparse.ArgumentParser(prog="exammentor", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mig = sub.add_parser("migrate", help="database migrations")
    mig.add_argument("action", choices=["up", "status"])
    mig.add_argument("--to", type=int, default=None, help="stop at this version")
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
    demo = sub.add_parser("demo", help="a real study flow through a running gateway")
    demo.add_argument("--gateway", default="http://127.0.0.1:8080")
    args = parser.parse_args(argv)

    settings = ServiceSettings()
    configure_logging("exammentor", settings.log_level, "console")
    commands = {
        "migrate": _migrate,
        "topics": _topics,
        "dead-letters": _dead_letters,
        "usage": _usage,
    }
    try:
        if args.command in commands:
            return asyncio.run(commands[args.command](args, settings))
        from exammentor.demo import run_demo

        return asyncio.run(run_demo(args.gateway))
    except asyncpg.UndefinedTableError as exc:
        _out(f"the schema is missing or old ({exc}): run 'exammentor migrate up'")
    except (OSError, asyncpg.PostgresError, migrate.MigrationError) as exc:
        _out(f"{type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
