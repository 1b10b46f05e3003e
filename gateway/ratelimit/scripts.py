"""The Lua scripts, read once from the package and registered on a client.

redis-py's ``AsyncScript`` sends exactly one ``EVALSHA`` per call and reloads the script
(``SCRIPT LOAD`` + ``EVALSHA``) only when the server answers ``NOSCRIPT`` — checked in
redis-py 8.1 (``redis/commands/core.py``); no ``SCRIPT EXISTS`` round trip per call."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


@cache
def source(name: str) -> str:
    """The text of ``gateway/ratelimit/<name>.lua``."""
    return files("gateway.ratelimit").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def gcra(redis: Redis) -> AsyncScript:
    """The GCRA script (``gcra.lua``) bound to ``redis``."""
    return redis.register_script(source("gcra"))


def heartbeat(redis: Redis) -> AsyncScript:
    """The instance heartbeat script (``heartbeat.lua``) bound to ``redis``."""
    return redis.register_script(source("heartbeat"))
