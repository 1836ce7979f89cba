"""A worker's stop undoes whatever its start got done, also after a start that failed."""

from __future__ import annotations

import pytest

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
