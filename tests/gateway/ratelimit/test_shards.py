"""The limiter's failure state is per shard, not one flag: on a cluster, one master down
sends only the subjects whose keys live there to the failure modes; and a Redis that
answers an error (a ResponseError) is not an outage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from gateway.ratelimit.policies import RateLimitSettings
from gateway.ratelimit.service import RedisRateLimiter, make_redis
from shared import keys
from svckit.redis_client import make_pipelined, resolve
from svckit.redis_pipeline import slot_of
from tests.fixtures.redis_cluster import LocalCluster, running_cluster
from tests.gateway.ratelimit.conftest import MakeLimiter

pytestmark = pytest.mark.integration

SETTINGS = RateLimitSettings.model_validate(
    {
        "policies": {"c": {"rate": 1, "period_s": 10, "burst": 100, "failure_mode": "closed"}},
        "redis_timeout_s": 1.0,
        "redis_cooldown_s": 30,
    }
)


@pytest.mark.redis_backends
async def test_an_error_answer_is_not_an_outage(
    make_limiter: MakeLimiter, redis_sync: redis.Redis
) -> None:
    lim = make_limiter(SETTINGS)
    # Another type under the subject's key: the script fails with WRONGTYPE.
    redis_sync.hset(keys.rate_limit("c", "user:odd"), "x", "1")
    odd = await lim.hit("c", "user:odd")
    assert odd.status == 503  # this call fails closed ...
    assert not lim.degraded  # ... but Redis is not taken for down
    assert (await lim.hit("c", "user:fine")).allowed


@pytest.fixture
def shard_cluster() -> Iterator[LocalCluster]:
    """A private cluster (a master gets killed)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.mark.cluster
async def test_one_master_down_degrades_only_its_subjects(shard_cluster: LocalCluster) -> None:
    url = shard_cluster.url
    pipelined = make_pipelined(resolve(url, timeout_s=1.0))
    client = make_redis(url, SETTINGS)
    lim = RedisRateLimiter(redis=client, settings=SETTINGS, owns_redis=client, pipelined=pipelined)
    try:
        # Two subjects whose keys live on different masters.
        by_master: dict[int, str] = {}
        for i in range(200):
            subject = f"user:{i}"
            port = shard_cluster.master_of_slot(slot_of(keys.rate_limit("c", subject))).port
            by_master.setdefault(port, subject)
            if len(by_master) == 2:
                break
        (dead_port, doomed), (_, spared) = sorted(by_master.items())
        for subject in (doomed, spared):
            assert (await lim.hit("c", subject)).allowed
        shard_cluster.kill(shard_cluster.by_port(dead_port))
        assert (await lim.hit("c", doomed)).status == 503  # closed: its master is gone
        assert lim.degraded
        # The other master still answers, and its subjects are still counted in Redis.
        for _ in range(3):
            spared_decision = await lim.hit("c", spared)
            assert spared_decision.allowed
            assert spared_decision.status != 503
        left = int(dict(spared_decision.headers)[b"ratelimit-remaining"])
        assert left == 100 - 4
    finally:
        await lim.aclose()
