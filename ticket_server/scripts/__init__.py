"""The Lua scripts of the command side, registered once per Redis client.

redis-py's ``AsyncScript`` runs EVALSHA and, on NOSCRIPT (a restarted or flushed server),
loads the script and retries, so callers never see the script cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """The registered scripts (see each ``.lua`` file for its KEYS and ARGV)."""

    hold: AsyncScript
    release: AsyncScript
    confirm: AsyncScript
    cancel: AsyncScript


def register_scripts(redis: Redis) -> Scripts:
    """Register every script on ``redis`` (no round trip: loading happens on first use)."""
    return Scripts(
        hold=redis.register_script(_source("hold")),
        release=redis.register_script(_source("release")),
        confirm=redis.register_script(_source("confirm")),
        cancel=redis.register_script(_source("cancel")),
    )
