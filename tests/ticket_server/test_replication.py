"""A confirmed reservation survives a failover: where the master has replicas, confirm
answers 201 only once a replica holds the reservation, else a ``replication-timeout``
problem within the bound; a retry with the same Idempotency-Key returns the reservation
if it survived, or confirms the hold afresh (same reservation id) if it did not. On a
private master and replica (``redis-server --replicaof``) this test pauses and kills."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from shared import keys
from shared.problems import problem_type
from tests.fixtures.redis_server import RedisProcess, wait_replica_in_sync
from tests.ticket_server.conftest import CatalogSession, User
from tests.ticket_server.helpers import assert_problem, book, hold, reserve, statuses
from tests.ticket_server.worker.tcp_proxy import TcpProxy
from ticket_server.ids import reservation_id_for_hold

pytestmark = pytest.mark.integration

# Roomy: on a loaded machine a replica's acknowledgement (through the proxy) can take
# a few hundred milliseconds of scheduling delay alone.
BOUND_MS = 700
SETTINGS = {"confirm_replica_timeout_ms": BOUND_MS, "redis_socket_timeout_s": 2.0}


@dataclass
class Pair:
    """A master and its replica, which replicates through a proxy the test may freeze."""

    master: RedisProcess
    replica: RedisProcess
    link: TcpProxy


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A master and its replica, in sync."""
    with RedisProcess() as master, TcpProxy("127.0.0.1", master.port) as link:
        with RedisProcess("--replicaof", "127.0.0.1", str(link.port)) as replica:
            wait_replica_in_sync(master)
            yield Pair(master, replica, link)


async def test_confirm_waits_for_the_replica_and_survives_a_failover(
    make_client, session: CatalogSession, pair: Pair
) -> None:
    master, replica = pair.master, pair.replica
    client = await make_client(redis_url=master.url, **SETTINGS)
    sid, seats = session.session_id, session.seat_ids
    u = User.new()

    # 1. With the replica up: 201, and the replica already holds the reservation.
    first = await book(client, u, sid, seats[:1])
    with replica.client() as r:
        assert r.hget(keys.reservation(sid, first["reservation_id"]), "status") == "confirmed"

    # 2. Replica paused: the confirm answers the problem within the bound...
    hold_id = (await hold(client, u, sid, seats[1:2])).json()["hold_id"]
    key = uuid.uuid4().hex
    replica.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = await reserve(client, u, sid, hold_id, key)
        elapsed = time.monotonic() - started
        body = assert_problem(r, 503)
        assert body["type"] == problem_type("replication-timeout")
        assert r.headers["Retry-After"] == "1"
        assert BOUND_MS / 1000 <= elapsed < BOUND_MS / 1000 + 0.7
        assert_problem(await reserve(client, u, sid, hold_id, key), 503)  # still unacknowledged
    finally:
        replica.signal(signal.SIGCONT)
    # ...and once the replica is back, the retry returns that very reservation (it survived).
    second = (await reserve(client, u, sid, hold_id, key)).json()
    assert second["reservation_id"] == reservation_id_for_hold(hold_id)
    assert second["seat_ids"] == seats[1:2]

    # 3. The hold reaches the replica, the confirm never does: the link freezes (a paused
    # replica would still find the confirm in its socket buffer), the master dies.
    hold_id = (await hold(client, u, sid, seats[2:3])).json()["hold_id"]
    wait_replica_in_sync(master)
    key = uuid.uuid4().hex
    pair.link.freeze()
    assert_problem(await reserve(client, u, sid, hold_id, key), 503)
    master.signal(signal.SIGKILL)
    pair.link.cut()
    with replica.client() as r:
        r.replicaof("NO", "ONE")  # promoted
        assert not r.exists(keys.reservation(sid, reservation_id_for_hold(hold_id)))
    promoted = await make_client(redis_url=replica.url, **SETTINGS)
    # No replicas now: the retry books afresh from the surviving hold, under the same id.
    third = await reserve(promoted, u, sid, hold_id, key)
    assert third.status_code == 201, third.text
    assert third.json()["reservation_id"] == reservation_id_for_hold(hold_id)
    again = await reserve(promoted, u, sid, hold_id, key)
    assert again.json() == third.json()

    # Every reservation that answered 201 is there after the failover, each seat sold once.
    r = await promoted.get("/api/ticketing/me/reservations", headers=u.auth())
    mine = sorted((x["reservation_id"], x["seat_ids"][0]) for x in r.json()["items"])
    assert mine == sorted(
        [
            (first["reservation_id"], seats[0]),
            (second["reservation_id"], seats[1]),
            (third.json()["reservation_id"], seats[2]),
        ]
    )
    seen = await statuses(promoted, u, sid)
    assert [seen[s] for s in seats[:4]] == ["sold", "sold", "sold", "available"]


async def test_without_replicas_confirm_does_not_wait(make_client, session: CatalogSession) -> None:
    with RedisProcess() as alone:
        client = await make_client(redis_url=alone.url, **SETTINGS)
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        started = time.monotonic()
        assert (await reserve(client, u, sid, hold_id)).status_code == 201
        assert time.monotonic() - started < BOUND_MS / 1000
        with alone.client() as r:
            assert not r.exists(keys.replication_fence(session.session_id))
