"""The waiting room's Lua scripts, loaded once per Redis client (EVALSHA; redis-py reloads
a script on NOSCRIPT). Every script gets the same key list, all under the session's hash tag,
so each runs unchanged on Redis Cluster."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from shared import keys
from svckit.redis_pipeline import PipelinedScript

HEARTBEAT_LANES = 5  # must match LANES in common.lua


def _source(name: str) -> str:
    folder = resources.files("gateway.queue") / "scripts"
    prelude = (folder / "common.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1024)
def script_keys(session_id: int) -> tuple[str, ...]:
    """KEYS of every queue script, in the order common.lua names them (cached: built on
    every call of the hot path otherwise)."""
    q = keys.queue_key
    return (
        q(session_id, "wait"),
        q(session_id, "meta"),
        q(session_id, "active"),
        q(session_id, "granted"),
        q(session_id, "gpos"),
        q(session_id, "expired"),
        keys.sold_out_flag(session_id),
        q(session_id, "alog"),
        *(q(session_id, f"hb{lane}") for lane in range(HEARTBEAT_LANES)),
    )


# The queue scripts as the auto-pipelined client calls them (one set per process).
@functools.cache
def pipelined(name: str) -> PipelinedScript:
    """Script ``name`` for :class:`svckit.redis_pipeline.PipelinedRedis`."""
    return PipelinedScript(_source(name), 8 + HEARTBEAT_LANES)


@dataclass(frozen=True, slots=True)
class QueueScripts:
    """The registered scripts of one Redis client."""

    status: AsyncScript
    leave: AsyncScript
    release: AsyncScript
    tick: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> QueueScripts:
        """Register (not yet load) every script on ``redis``."""
        return cls(
            status=redis.register_script(_source("status")),
            leave=redis.register_script(_source("leave")),
            release=redis.register_script(_source("release")),
            tick=redis.register_script(_source("tick")),
        )
