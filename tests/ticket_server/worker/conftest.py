"""Fixtures of the worker tests: a catalog in the test database and in-process workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import Engine

from svckit.redis_client import make_sync_redis, resolve
from tests.ticket_server.worker.support import Catalog, make_catalog
from ticket_server.worker.consumer import Worker, WorkerOptions
from ticket_server.worker.metrics import WorkerMetrics

MakeWorker = Callable[..., Worker]


@pytest.fixture
def catalog(clean_db: Engine) -> Catalog:
    """Two sessions with 400 seats, in an otherwise empty database."""
    return make_catalog(clean_db)


@pytest.fixture
def make_worker(clean_db: Engine, redis_sync: redis.Redis, redis_url: str) -> Iterator[MakeWorker]:
    """Build in-process workers (own Redis client each) with test-sized timings."""
    clients: list[redis.Redis] = []

    def build(name: str = "w1", **overrides: object) -> Worker:
        client = make_sync_redis(resolve(redis_url, timeout_s=5), decode_responses=True)
        clients.append(client)
        opts: dict[str, object] = {
            "consumer": name,
            "block_ms": 50,
            "claim_idle_ms": 60_000,
            "discover_interval_s": 0.05,
            "backoff_base_s": 0.01,
            "backoff_cap_s": 0.05,
        } | overrides
        return Worker(
            redis_client=client,
            engine=clean_db,
            options=WorkerOptions(**opts),  # type: ignore[arg-type]
            metrics=WorkerMetrics(),
        )

    yield build
    for c in clients:
        c.close()


def drain(*workers: Worker, max_steps: int = 200) -> None:
    """Step the workers until a whole round reads nothing."""
    for _ in range(max_steps):
        if sum(w.step() for w in workers) == 0:
            return
    raise AssertionError("workers did not drain")
