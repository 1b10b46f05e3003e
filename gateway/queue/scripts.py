"""The waiting room's Lua scripts, loaded once per Redis client (EVALSHA; redis-py reloads
a script on NOSCRIPT). Every script gets the session's queue keys, all under its hash tag,
(member scripts also the member's bucket, the draw every entrant's), so each runs unchanged
on Redis Cluster."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from shared import keys
from svckit.redis_pipeline import PipelinedScript

HEARTBEAT_LANES = 5  # must match LANES in common.lua
# Scripts about one member get its bucket after the session's keys.
MEMBER_SCRIPTS = frozenset({"status", "leave", "release"})
SESSION_KEYS = 8 + HEARTBEAT_LANES


def _source(name: str) -> str:
    folder = resources.files("gateway.queue") / "scripts"
    prelude = (folder / "common.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1024)
def script_keys(session_id: int) -> tuple[str, ...]:
    """The session's KEYS of every queue script, in the order common.lua names them
    (cached: built on every call of the hot path otherwise)."""
    q = keys.queue_key
    return (
        q(session_id, "drop"),
        q(session_id, "meta"),
        q(session_id, "active"),
        q(session_id, "granted"),
        q(session_id, "batch"),
        q(session_id, "pre"),
        keys.sold_out_flag(session_id),
        q(session_id, "alog"),
        *(q(session_id, f"hb{lane}") for lane in range(HEARTBEAT_LANES)),
    )


def bucket_of(member: str) -> int:
    """The member bucket of a member (its first 15 bits: members are uniform digests)."""
    raw = base64.urlsafe_b64decode(member)
    return int.from_bytes(raw[:2], "big") % keys.QUEUE_MEMBER_BUCKETS


def member_keys(session_id: int, member: str) -> tuple[str, ...]:
    """KEYS of a member script: the session's, then the member's bucket."""
    return (*script_keys(session_id), keys.queue_members(session_id, bucket_of(member)))


# The queue scripts as the auto-pipelined client calls them (one set per process).
@functools.cache
def pipelined(name: str) -> PipelinedScript:
    """Script ``name`` for :class:`svckit.redis_pipeline.PipelinedRedis`."""
    if name in ("draw", "joins"):
        return PipelinedScript(_source(name))
    return PipelinedScript(_source(name), SESSION_KEYS + (name in MEMBER_SCRIPTS))


@dataclass(frozen=True, slots=True)
class QueueScripts:
    """The registered scripts of one Redis client."""

    status: AsyncScript
    leave: AsyncScript
    release: AsyncScript
    tick: AsyncScript
    joins: AsyncScript
    beat: AsyncScript
    snapshot: AsyncScript
    draw: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> QueueScripts:
        """Register (not yet load) every script on ``redis``."""
        return cls(
            **{name: redis.register_script(_source(name)) for name in cls.__dataclass_fields__}
        )
