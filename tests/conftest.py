"""Suite-wide fixtures: one test database (migrated once per run with Alembic, tables
emptied after each test that used it) and one Redis DB index (flushed per test)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import Engine

from boxoffice.db import migrate
from shared.db.engine import make_engine
from tests.fixtures.services import (
    TEST_REDIS_ENV,
    EmbeddedRedis,
    empty_tables,
    reset_database,
    test_database_url,
)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp folder for the whole run."""
    return tmp_path_factory.mktemp("bx")


@pytest.fixture(scope="session")
def database_url(tmp_root: Path) -> str:
    """URL of the suite's database, migrated to head (this exercises the migrations)."""
    url = test_database_url(tmp_root)
    engine = make_engine(url)
    try:
        reset_database(engine)
    finally:
        engine.dispose()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_db(db_engine: Engine) -> Iterator[Engine]:
    """The test database, emptied after the test (works for subprocesses too, unlike a
    rolled-back transaction)."""
    yield db_engine
    empty_tables(db_engine)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the suite's Redis DB index (``BOXOFFICE_TEST_REDIS_URL``), else an embedded
    Valkey started for this run."""
    url = os.environ.get(TEST_REDIS_ENV)
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client on the suite's DB index, flushed before the test."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def redis_client(redis_sync: redis.Redis, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client on the suite's (flushed) DB index."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


_integration_passed: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count passed integration tests (CI checks that they ran on MariaDB)."""
    if report.when == "call" and report.passed and "integration" in report.keywords:
        _integration_passed.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which database and Redis the run used, and how many integration tests passed."""
    from sqlalchemy.engine import make_url

    from tests.fixtures.services import TEST_DATABASE_ENV

    url = os.environ.get(TEST_DATABASE_ENV)
    backend = make_url(url).get_backend_name() if url else "sqlite"
    redis_kind = "external" if os.environ.get(TEST_REDIS_ENV) else "embedded valkey"
    terminalreporter.write_line(f"test database: {backend}; test redis: {redis_kind}")
    terminalreporter.write_line(
        f"integration tests on {backend}: {len(_integration_passed)} passed"
    )
