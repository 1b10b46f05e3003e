"""The production upstream transport: httpx's API on an aiohttp connection pool.

Stock httpcore costs ~1 ms CPU per proxied request here (its pool polls every connection on
each acquire/release); see BENCHMARKS.md for the measurements behind this choice.
"""

from __future__ import annotations

from httpx_aiohttp import AiohttpTransport


class FastTransport(AiohttpTransport):
    """aiohttp-backed transport (first version: httpx-aiohttp as is)."""

    def __init__(self, *, max_connections: int, connect_timeout_s: float) -> None:
        import httpx

        super().__init__(limits=httpx.Limits(max_connections=max_connections))
