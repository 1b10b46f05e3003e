"""api_server on a real MariaDB replica (tests/fixtures/mariadb.py): reads go to the
replica, follow replication, and fall back to the primary while the replica is down,
stopped or lagging beyond the bound; /metrics and /readyz say which."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api_server.app import create_app
from boxoffice.ports import free_port
from shared.db.engine import make_engine
from tests.api_server.conftest import add_catalog, assert_problem, make_settings, serve
from tests.fixtures.mariadb import ReplicaPair
from tests.fixtures.services import empty_tables

pytestmark = pytest.mark.replica


@pytest.fixture
def pair(replica_pair: ReplicaPair) -> Iterator[ReplicaPair]:
    """The replica pair, replicating and caught up; afterwards repaired and emptied."""
    replica_pair.ensure_replicating()
    yield replica_pair
    replica_pair.ensure_replicating()
    engine = make_engine(replica_pair.primary_url)
    try:
        empty_tables(engine)
    finally:
        engine.dispose()
    replica_pair.wait_caught_up()


@pytest.fixture
def primary(pair: ReplicaPair) -> Iterator[Engine]:
    """An engine on the primary, for writing rows as the worker and admin API would."""
    engine = make_engine(pair.primary_url)
    yield engine
    engine.dispose()


@asynccontextmanager
async def api_on(pair: ReplicaPair, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """api_server with the primary as its database and the replica as its read database,
    sampling the replica every 0.1 s."""
    settings = make_settings(
        pair.primary_url,
        read_database_url=pair.replica_url,
        **{"read_replica_check_interval_s": 0.1, **overrides},
    )
    async with serve(create_app(settings)) as api:
        yield api


def write_performance(primary: Engine, title: str) -> None:
    with Session(primary, expire_on_commit=False) as db:
        add_catalog(db, title=title)


async def titles(api: httpx.AsyncClient) -> list[str]:
    resp = await api.get("/api/performances")
    assert resp.status_code == 200, resp.text
    return sorted(p["title"] for p in resp.json()["items"])


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def metric(api: httpx.AsyncClient, name: str) -> float:
    text_ = (await api.get("/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text_, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def read_note(api: httpx.AsyncClient) -> str:
    # /readyz shares its verdict for a second (svckit/ops.py): wait out the one before.
    await asyncio.sleep(1.05)
    resp = await api.get("/readyz")
    assert resp.status_code == 200, resp.text
    note: str = resp.json()["checks"]["read_database"]
    return note


async def test_a_row_written_to_the_primary_is_read_through_the_replica(
    pair: ReplicaPair, primary: Engine
) -> None:
    async with api_on(pair) as api:
        write_performance(primary, "Replicated")

        async def shows_it() -> bool:
            return await titles(api) == ["Replicated"]

        await eventually(shows_it)
        assert await metric(api, 'boxoffice_db_reads_total{target="replica"}') >= 1
        assert await metric(api, 'boxoffice_db_reads_total{target="primary"}') == 0
        assert await metric(api, "boxoffice_db_replica_lag_seconds") == 0
        assert await metric(api, "boxoffice_db_replica_replicating") == 1
        assert await metric(api, "boxoffice_db_reads_on_primary") == 0
        assert await read_note(api) == "ok"


async def test_reads_show_the_replicas_view_while_replication_is_stopped(
    pair: ReplicaPair, primary: Engine
) -> None:
    # No fallback: reads stay on the replica, so they show what it has, not the primary.
    async with api_on(pair, read_replica_max_lag_s=0) as api:
        write_performance(primary, "Before")
        pair.wait_caught_up()
        pair.replica.query("STOP SLAVE SQL_THREAD")
        write_performance(primary, "After")

        async def noted() -> bool:
            return "replication stopped" in await read_note(api)

        await eventually(noted)
        assert await titles(api) == ["Before"]
        assert await read_note(api) == "replica replication stopped; reads may be stale"
        assert await metric(api, "boxoffice_db_replica_replicating") == 0
        assert await metric(api, "boxoffice_db_reads_on_primary") == 0

        pair.replica.query("START SLAVE SQL_THREAD")

        async def caught_up() -> bool:
            return await titles(api) == ["After", "Before"]

        await eventually(caught_up)


async def test_requests_do_not_sample_the_replica(pair: ReplicaPair, primary: Engine) -> None:
    # With a long interval, only the start-up sample exists: a stopped replica goes
    # unnoticed by requests, which keep reading it.
    async with api_on(pair, read_replica_check_interval_s=3600) as api:
        pair.replica.query("STOP SLAVE SQL_THREAD")
        write_performance(primary, "Unseen")
        for _ in range(20):
            assert await titles(api) == []
        assert await metric(api, 'boxoffice_db_reads_total{target="replica"}') == 20
        assert await metric(api, "boxoffice_db_replica_replicating") == 1


async def test_stopped_replication_moves_reads_to_the_primary_and_back(
    pair: ReplicaPair, primary: Engine
) -> None:
    async with api_on(pair) as api:
        pair.replica.query("STOP SLAVE SQL_THREAD")
        write_performance(primary, "Fresh")

        async def from_primary() -> bool:
            return await titles(api) == ["Fresh"]

        await eventually(from_primary)
        assert await metric(api, "boxoffice_db_reads_on_primary") == 1
        assert await metric(api, 'boxoffice_db_reads_total{target="primary"}') >= 1
        assert await read_note(api) == "replica replication stopped; reads use the primary"

        pair.replica.query("START SLAVE SQL_THREAD")

        async def back_on_replica() -> bool:
            return await metric(api, "boxoffice_db_reads_on_primary") == 0

        await eventually(back_on_replica)
        # Back on the replica within the lag bound: once caught up it shows the row too.
        pair.wait_caught_up()
        before = await metric(api, 'boxoffice_db_reads_total{target="replica"}')
        assert await titles(api) == ["Fresh"]
        assert await metric(api, 'boxoffice_db_reads_total{target="replica"}') == before + 1
        assert await read_note(api) == "ok"


async def test_a_replica_lagging_beyond_the_bound_is_bypassed(
    pair: ReplicaPair, primary: Engine
) -> None:
    # MASTER_DELAY holds every event back: a real, growing Seconds_Behind_Master.
    pair.replica.query("STOP SLAVE")
    pair.replica.query("CHANGE MASTER TO MASTER_DELAY=60")
    pair.replica.query("START SLAVE")
    async with api_on(pair, read_replica_max_lag_s=1) as api:
        write_performance(primary, "Delayed")

        async def bypassed() -> bool:
            return await metric(api, "boxoffice_db_reads_on_primary") == 1

        await eventually(bypassed)
        assert await metric(api, "boxoffice_db_replica_lag_seconds") > 1
        assert await metric(api, "boxoffice_db_replica_replicating") == 1
        assert await titles(api) == ["Delayed"]
        note = await read_note(api)
        assert "behind the primary (bound 1s)" in note
        assert note.endswith("reads use the primary")


async def test_a_killed_replica_is_named_and_reads_survive(
    pair: ReplicaPair, primary: Engine
) -> None:
    write_performance(primary, "Kept")
    pair.wait_caught_up()
    async with api_on(pair) as api, api_on(pair, read_replica_max_lag_s=0) as strict:
        assert await titles(api) == ["Kept"]
        pair.replica.kill()

        async def noticed() -> bool:
            return await metric(api, "boxoffice_db_replica_up") == 0

        await eventually(noticed)
        assert await titles(api) == ["Kept"]  # from the primary
        note = await read_note(api)
        assert note.startswith("replica unreachable")
        assert note.endswith("reads use the primary")
        assert await metric(api, "boxoffice_db_reads_on_primary") == 1
        assert await metric(api, "boxoffice_db_replica_lag_seconds") != 0  # NaN: unknown

        # Without fallback, reads cannot be served: /readyz is a 503 naming the replica.
        async def strict_noticed() -> bool:
            return (await strict.get("/readyz")).status_code == 503

        await eventually(strict_noticed)
        body = assert_problem(await strict.get("/readyz"), 503)
        assert set(body["failing"]) == {"read_database"}
        assert body["failing"]["read_database"] == "ReplicaUnavailable"
        assert_problem(await strict.get("/api/performances"), 503)

        # The replica comes back and catches up by itself; reads return to it.
        pair.replica.start()
        write_performance(primary, "While away")
        pair.wait_caught_up()

        async def recovered() -> bool:
            return await metric(api, "boxoffice_db_reads_on_primary") == 0

        await eventually(recovered)
        assert await titles(api) == ["Kept", "While away"]
        assert await read_note(api) == "ok"

        async def strict_recovered() -> bool:
            return (await strict.get("/readyz")).status_code == 200

        await eventually(strict_recovered)  # its own sampler, on its own schedule


async def test_a_frozen_replica_is_bypassed_within_the_sample_timeout(
    pair: ReplicaPair, primary: Engine
) -> None:
    write_performance(primary, "Kept")
    pair.wait_caught_up()
    async with api_on(pair) as api:
        assert await titles(api) == ["Kept"]  # the pool now holds a replica connection
        pair.replica.freeze()
        try:

            async def bypassed() -> bool:
                return await metric(api, "boxoffice_db_reads_on_primary") == 1

            await eventually(bypassed)
            assert await metric(api, "boxoffice_db_replica_up") == 0
            note = await read_note(api)
            assert note == "replica unreachable; reads use the primary"
            started = time.monotonic()
            assert await titles(api) == ["Kept"]  # from the primary, not stuck
            assert time.monotonic() - started < 1
        finally:
            pair.replica.thaw()

        async def recovered() -> bool:
            return await metric(api, "boxoffice_db_reads_on_primary") == 0

        await eventually(recovered)
        assert await read_note(api) == "ok"


async def test_reads_stay_on_a_stopped_replica_while_the_primary_is_down(
    pair: ReplicaPair, primary: Engine
) -> None:
    write_performance(primary, "Stale but served")
    pair.wait_caught_up()
    pair.replica.query("STOP SLAVE SQL_THREAD")
    settings = make_settings(
        f"mysql+pymysql://root@127.0.0.1:{free_port()}/nothing",  # a primary that is down
        read_database_url=pair.replica_url,
        read_replica_check_interval_s=0.1,
    )
    async with serve(create_app(settings)) as api:

        async def sampled() -> bool:
            return await metric(api, "boxoffice_db_replica_replicating") == 0

        await eventually(sampled)
        assert await metric(api, "boxoffice_db_reads_on_primary") == 0
        assert await titles(api) == ["Stale but served"]
        body = assert_problem(await api.get("/readyz"), 503)
        assert set(body["failing"]) == {"database"}
