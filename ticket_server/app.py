"""ticket_server: the command side (seat map, holds, reservations), all state in Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from sqlalchemy import Engine, text

from shared.db.engine import make_engine
from shared.verified_tokens import VerifiedTokens
from svckit.app import install_common
from svckit.gc_tuning import freeze_startup_heap
from svckit.redis_client import (
    REDIS_ERRORS,
    RedisHealth,
    RedisOptions,
    make_async_redis,
    make_pipelined,
    ping_all,
    resolve,
)
from ticket_server.config import Settings
from ticket_server.dependencies import Ticketing
from ticket_server.errors import add_storage_handlers
from ticket_server.holds.router import router as holds_router
from ticket_server.inventory.fast import SeatMapFastPath
from ticket_server.inventory.router import router as inventory_router
from ticket_server.inventory.service import Inventory
from ticket_server.metrics import BookingMetrics
from ticket_server.reservations.replication import ReplicaWait
from ticket_server.reservations.router import router as reservations_router
from ticket_server.scripts import register_scripts

log = logging.getLogger("boxoffice.ticket_server")


def redis_options(settings: Settings) -> RedisOptions:
    """How ticket_server talks to Redis: bounded timeouts, replies decoded, and the one
    retry policy (``svckit/redis_client.py``): a script whose reply was lost is never
    re-sent (it could apply twice); a quick 503 (the client retries with its
    Idempotency-Key) beats a slow one."""
    return resolve(
        settings.require_redis_url(),
        mode=settings.redis_mode,
        timeout_s=settings.redis_socket_timeout_s,
        connect_timeout_s=settings.redis_connect_timeout_s,
        max_connections=settings.redis_max_connections,
        pool_timeout_s=settings.redis_pool_timeout_s,
        decode_responses=True,
    )


def make_redis(settings: Settings) -> Redis:
    """ticket_server's redis-py client (a cluster client on a cluster)."""
    return make_async_redis(redis_options(settings))


async def warm_pool(redis: Redis, connections: int) -> None:
    """Open the pool's connections before traffic arrives (best effort).

    At on-sale time hundreds of requests arrive at once; connecting then, with the event
    loop busy parsing them, can exceed the connect timeout and turn a burst into 503s.
    """
    pool = getattr(redis, "connection_pool", None)
    if pool is None:  # a cluster client: one pool per node, filled on demand
        return
    held = []
    try:
        for _ in range(connections):
            conn = await pool.get_connection()
            held.append(conn)
            await conn.connect()
    except REDIS_ERRORS as e:  # Redis not up yet: connect lazily later
        log.warning("redis pool warm-up skipped: %s", e)
    finally:
        for conn in held:
            await pool.release(conn)


async def _check_redis(request: Request) -> None:
    redis: Redis = request.state.redis
    await ping_all(redis)
    request.app.state.redis_health.check()


async def _check_database(request: Request) -> None:
    engine: Engine = request.state.engine

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await anyio.to_thread.run_sync(ping)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ticket_server app (``uvicorn ticket_server.app:create_app --factory``)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        options = redis_options(settings)
        redis = make_async_redis(options)
        pipelined = make_pipelined(options)
        engine = make_engine(settings.resolved_database_url())
        await warm_pool(redis, settings.redis_max_connections)
        try:
            scripts = register_scripts(redis, pipelined)
            inventory = Inventory(
                redis=redis,
                seat_map=scripts.seat_map,
                engine=engine,
                load_wait_s=settings.inventory_load_wait_s,
                metrics=booking_metrics,
            )
            state = {
                "settings": settings,  # svckit/http_server.py reads the edge limits here
                "redis": redis,
                "engine": engine,
                "ticketing": Ticketing(
                    settings=settings,
                    redis=redis,
                    scripts=scripts,
                    inventory=inventory,
                    metrics=booking_metrics,
                    tokens=VerifiedTokens(settings.secret_key),
                    replica_wait=ReplicaWait(redis=redis, timeout_ms=settings.replica_wait_ms()),
                ),
            }
            freeze_startup_heap(settings.gc_freeze)
            yield state
        finally:
            if pipelined is not None:
                await pipelined.aclose()
            await redis.aclose()
            engine.dispose()

    app = FastAPI(
        title="Boxoffice ticket_server",
        summary="Seat map, holds and reservations (the command side).",
        version="0.1.0",
        lifespan=lifespan,
    )
    # Added first, so it sits inside the common middleware (request id, metrics, gzip).
    app.add_middleware(SeatMapFastPath)
    service_metrics = install_common(
        app, service="ticket_server", checks={"redis": _check_redis, "database": _check_database}
    )
    booking_metrics = BookingMetrics(service_metrics.registry)
    app.state.redis_health = RedisHealth()
    add_storage_handlers(app)
    app.include_router(inventory_router)
    app.include_router(holds_router)
    app.include_router(reservations_router)
    return app
