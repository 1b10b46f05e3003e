"""Suite-wide fixtures: one test database (migrated once per run with Alembic, tables
emptied after each test that used it) and one Redis (flushed per test).

Redis backends are parametrized the way alisaifee/limits parametrizes its storage tests:
a test (or module) marked ``redis_backends`` runs once on the standalone server and once on
a local Redis Cluster of 3 masters and 3 replicas (``tests/fixtures/redis_cluster.py``);
the cluster runs carry the ``cluster`` mark (``-m cluster`` selects them, ``-m "not
cluster"`` skips them). Other tests use the standalone server only."""

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
from svckit.redis_client import make_async_redis, make_sync_redis, resolve
from tests.fixtures.mariadb import replica_pair  # noqa: F401  (a session fixture)
from tests.fixtures.redis_cluster import LocalCluster, running_cluster
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


REDIS_BACKENDS = [
    pytest.param("standalone", id="standalone"),
    pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests marked ``redis_backends`` on every Redis backend (session-scoped, so pytest
    groups the tests of one backend together)."""
    if metafunc.definition.get_closest_marker("redis_backends") is None:
        return
    if "redis_url" not in metafunc.fixturenames:  # the test does not touch the suite's Redis
        return
    metafunc.parametrize("redis_backend", REDIS_BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def standalone_redis_url() -> Iterator[str]:
    """URL of the suite's Redis DB index (``BOXOFFICE_TEST_REDIS_URL``), else an embedded
    Valkey started for this run."""
    url = os.environ.get(TEST_REDIS_ENV)
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A local Redis Cluster (3 masters, 3 replicas) for the whole run, started on first
    use. Tests that break it (kill, migrate) start their own instead."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_backend(request: pytest.FixtureRequest) -> str:
    """``standalone`` or ``cluster`` (parametrized for tests marked ``redis_backends``)."""
    return str(getattr(request, "param", "standalone"))


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, redis_backend: str) -> str:
    """URL of the Redis the test runs on: the standalone server's DB index, or any node
    of the local cluster (clients find the others)."""
    if redis_backend == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    return str(request.getfixturevalue("standalone_redis_url"))


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client (a cluster client on a cluster), flushed before the test."""
    client = make_sync_redis(resolve(redis_url, timeout_s=5), decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def redis_client(redis_sync: redis.Redis, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client on the suite's (flushed) Redis."""
    client = make_async_redis(resolve(redis_url, timeout_s=5), decode_responses=True)
    yield client
    await client.aclose()


_integration_passed: list[str] = []
_cluster_passed: list[str] = []
_replica_passed: list[str] = []
_browser_passed: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """The marks of the Redis backend parametrization."""
    config.addinivalue_line("markers", "redis_backends: run on standalone Redis and a cluster")
    config.addinivalue_line("markers", "cluster: the Redis Cluster run of a redis_backends test")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count passed integration (CI checks that they ran on MariaDB), cluster, read-replica
    and browser tests (CI checks that each ran)."""
    if report.when == "call" and report.passed:
        if "integration" in report.keywords:
            _integration_passed.append(report.nodeid)
        if "cluster" in report.keywords:
            _cluster_passed.append(report.nodeid)
        if "replica" in report.keywords:
            _replica_passed.append(report.nodeid)
        if "browser" in report.keywords:
            _browser_passed.append(report.nodeid)


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
    terminalreporter.write_line(f"replica tests: {len(_replica_passed)} passed")
    terminalreporter.write_line(f"browser tests: {len(_browser_passed)} passed")
    terminalreporter.write_line(f"cluster tests: {len(_cluster_passed)} passed")
