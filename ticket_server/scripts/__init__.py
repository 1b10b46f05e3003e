"""The Lua scripts of the command side, registered once per Redis client.

Each runs by EVALSHA and, on NOSCRIPT (a restarted or flushed server), is loaded again, so
callers never see the script cache: redis-py's ``AsyncScript``, or on a plain ``redis://``
URL the auto-pipelined client (``svckit/redis_pipeline.py``: several scripts from one loop
iteration share a write, and a fraction of redis-py's CPU per call). Either way a script
is sent once, never retried (a lost reply must not apply it twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis

from svckit.redis_pipeline import AnyPipelined, PipelinedScript

# ``await script(keys=[...], args=[...])``: redis-py's AsyncScript or a BoundScript.
ScriptCall = Callable[..., Awaitable[Any]]


def _source(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """The registered scripts (see each ``.lua`` file for its KEYS and ARGV)."""

    hold: ScriptCall
    release: ScriptCall
    confirm: ScriptCall
    cancel: ScriptCall
    seat_map: ScriptCall


def register_scripts(redis: Redis, pipelined: AnyPipelined | None = None) -> Scripts:
    """Every script on ``pipelined`` if given, else registered on ``redis`` (no round trip
    either way: loading happens on first use)."""
    names = ("hold", "release", "confirm", "cancel", "seat_map")
    if pipelined is not None:
        return Scripts(*(PipelinedScript(_source(n)).bind(pipelined) for n in names))
    return Scripts(*(redis.register_script(_source(n)) for n in names))
