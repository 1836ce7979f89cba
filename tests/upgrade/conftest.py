"""The upgrade tests need Postgres only: a server of their own choosing, never Kafka."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.upgrade.database import provide_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """An owner connection string of the session's Postgres server."""
    with provide_postgres() as dsn:
        yield dsn
