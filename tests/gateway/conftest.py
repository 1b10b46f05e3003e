"""Gateway test fixtures: ``gateway`` and ``gateway_factory`` from ``gateway.testing``, and a
clean Redis DB index for every gateway test (the queue looks sessions up in Redis, so keys
left by an earlier test would change what a mocked upstream sees)."""

import pytest
import redis

from gateway.testing import gateway, gateway_factory

__all__ = ["gateway", "gateway_factory"]


@pytest.fixture(autouse=True)
def _clean_redis(redis_sync: redis.Redis) -> None:
    """``redis_sync`` flushes the suite's DB index before the test."""
