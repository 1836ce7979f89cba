"""A worker's stop undoes whatever its start got done, also after a start that failed;
the lifecycle under it closes in reverse order, every step, also when one fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from exammentor.lifecycle import Lifecycle
from exammentor.outages import ServerUnreachable
from exammentor.settings import DatabaseSettings
from exammentor.worker import Worker
from services.planner.handlers import install_handlers
from services.planner.settings import PlannerSettings
from tests.infra import free_port


async def test_stop_after_a_start_that_failed_does_not_raise() -> None:
    nobody = f"postgresql://exammentor_app@127.0.0.1:{free_port()}/nothing"
    settings = PlannerSettings(
        db=DatabaseSettings(app_database_url=nobody, database_url=nobody), startup_wait_s=0.5
    )
    worker = Worker(settings, install_handlers)
    with pytest.raises(ServerUnreachable, match=r"Postgres at 127\.0\.0\.1"):
        await worker.start()
    await worker.stop()
    await worker.stop()  # and again: stop is idempotent
    assert worker.resources is None


def test_the_service_name_is_stated_once_in_its_settings() -> None:
    assert PlannerSettings().service_name == "planner"
    with pytest.raises(ValueError, match="service_name"):
        PlannerSettings(service_name="mailer")  # type: ignore[arg-type]


async def test_the_lifecycle_closes_in_reverse_even_when_a_step_fails() -> None:
    done: list[str] = []
    life = Lifecycle("test")

    async def start() -> None:
        done.append("start")

    def stop(name: str) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            done.append(name)

        return step

    async def failing() -> None:
        done.append("producer")
        raise OSError("broker gone")

    life.on_stop(stop("pool"))
    await life.enter(start, failing)
    await life.enter(start, stop("consumer"))
    life.on_stop(lambda: done.append("draining"))  # a plain function is a step too
    done.clear()
    with pytest.raises(OSError, match="broker gone"):
        await life.close()
    assert done == ["draining", "consumer", "producer", "pool"]
    await life.close()  # and again: nothing is left to close
    assert done == ["draining", "consumer", "producer", "pool"]


async def test_a_start_that_fails_is_undone_with_what_came_before() -> None:
    done: list[str] = []
    life = Lifecycle("test")

    async def half_started() -> None:
        done.append("half started")
        raise OSError("port taken")

    async def opened() -> None:
        done.append("opened")

    async def closed() -> None:
        done.append("closed")

    async def undone() -> None:
        done.append("undone")

    await life.enter(opened, closed)
    with pytest.raises(OSError, match="port taken"):
        await life.enter(half_started, undone)
    await life.close()
    assert done == ["opened", "half started", "undone", "closed"]
