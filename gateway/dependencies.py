"""FastAPI dependencies of the gateway-owned routes (auth, queue), as ``Annotated`` aliases.

``CurrentUser`` is the identity the front layer (``gateway/front.py``) already verified for
this request; routes marked ``auth`` in the route table never get here without one.

All are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per dependency per request, which showed in the gateway's
profile during the on-sale burst (logins, joins and status polls all use these).
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.proxy import Upstream
from shared.tokens import AccessClaims
from svckit.errors import Unauthorized


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    """The app's Redis client (owned by the lifespan)."""
    redis: Redis = request.app.state.redis
    return redis


async def get_upstreams(request: Request) -> dict[str, Upstream]:
    """The upstreams by name ("api", "ticket")."""
    upstreams: dict[str, Upstream] = request.app.state.upstreams
    return upstreams


async def get_api_client(request: Request) -> httpx.AsyncClient:
    """The pooled client of api_server (e.g. for session facts)."""
    upstreams: dict[str, Upstream] = request.app.state.upstreams
    return upstreams["api"].client


async def get_current_user(request: Request) -> AccessClaims:
    """The verified user of this request, else 401."""
    user = request.scope.get("state", {}).get("user")
    if not isinstance(user, AccessClaims):
        raise Unauthorized("an access token is required")
    return user


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
UpstreamsDep = Annotated[dict[str, Upstream], Depends(get_upstreams)]
ApiClientDep = Annotated[httpx.AsyncClient, Depends(get_api_client)]
CurrentUser = Annotated[AccessClaims, Depends(get_current_user)]
