"""The gateway on httpx-aiohttp's transport: a comparison point for ``bench/gateway_proxy.py
--transports aiohttp`` only, never a production option (the gateway's settings offer the
fast and the stock httpx transports). Needs the ``bench`` extra
(``pip install -e '.[bench]'``).

    uvicorn --app-dir bench aiohttp_gateway:create_app --factory
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.app import GatewayApp
from gateway.app import create_app as create_gateway
from gateway.config import Settings


def create_app() -> GatewayApp:
    """The gateway with its settings from the environment and the aiohttp transport.

    The gateway does not close an injected transport; the benchmark ends the process."""
    settings = Settings()
    transport = AiohttpTransport(
        limits=httpx.Limits(max_connections=settings.upstream_max_connections)
    )
    return create_gateway(settings, transport=transport)
