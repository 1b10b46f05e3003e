"""The api_server application factory (``uvicorn api_server.app:create_app --factory``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI, Request
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api_server.admin.guard import AdminGuard
from api_server.admin.router import router as admin_router
from api_server.catalog.router import router as catalog_router
from api_server.config import Settings
from api_server.errors import add_database_error_handler
from api_server.rankings.router import router as rankings_router
from api_server.replica import ReadMetrics, ReadRouter
from api_server.stats.router import router as stats_router
from shared.db.engine import make_engine, make_session_factory
from svckit.app import install_common
from svckit.gc_tuning import freeze_startup_heap
from svckit.logs import configure_logging
from svckit.metrics import ServiceMetrics
from svckit.ops import ReadinessCheck

MAX_BODY_BYTES = 1024 * 1024
# The longest a read may wait for the replica's answer before it is a 503.
READ_TIMEOUT_S = 30


class State(TypedDict):
    """What the lifespan yields; every request sees it as ``request.state``."""

    settings: Settings
    engine: Engine
    read_engine: Engine
    session_factory: sessionmaker[Session]
    read_router: ReadRouter


def _make_read_engine(url: str) -> Engine:
    # pymysql waits for an answer without limit: a replica that hangs (frozen, or cut off
    # without a reset) would hold request threads for ever. Reads are short lookups.
    if make_url(url).get_backend_name() == "mysql":
        timeouts = {"read_timeout": READ_TIMEOUT_S, "write_timeout": READ_TIMEOUT_S}
        return make_engine(url, connect_args=timeouts)
    return make_engine(url)


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _engine_check(attr: str) -> ReadinessCheck:
    async def check(request: Request) -> None:
        # pymysql is blocking: ping in a thread so a dead database cannot stall the loop;
        # svckit's /readyz bounds the wait.
        await asyncio.to_thread(_ping, getattr(request.state, attr))

    return check


async def _read_database_check(request: Request) -> str | None:
    # The replica's last sample, not a query: reads fall back rather than fail, so this
    # only fails when they cannot (ReadRouter.readiness).
    router: ReadRouter = request.state.read_router
    return router.readiness()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine(s) are created in the lifespan and disposed on shutdown."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = ServiceMetrics("api_server")
    read_metrics = ReadMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        engine = make_engine(settings.resolved_database_url())
        read_engine = (
            _make_read_engine(settings.read_database_url) if settings.read_database_url else engine
        )
        router = ReadRouter(
            primary=engine,
            replica=read_engine if read_engine is not engine else None,
            max_lag_s=settings.read_replica_max_lag_s,
            interval_s=settings.read_replica_check_interval_s,
            metrics=read_metrics,
        )
        sampler: asyncio.Task[None] | None = None
        if router.replica is not None:
            await router.sample()  # start on the right database
            sampler = asyncio.create_task(router.run(), name="read-replica-sampler")
        read_metrics.router = router
        freeze_startup_heap(settings.gc_freeze)
        try:
            yield {
                "settings": settings,
                "engine": engine,
                "read_engine": read_engine,
                "session_factory": make_session_factory(engine),
                "read_router": router,
            }
        finally:
            read_metrics.router = None
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            engine.dispose()
            if read_engine is not engine:
                read_engine.dispose()

    app = FastAPI(
        title="Boxoffice api_server",
        version="0.1.0",
        summary="Catalog, rankings and statistics (the query side), and the admin catalog API.",
        lifespan=lifespan,
    )
    checks: dict[str, ReadinessCheck] = {"database": _engine_check("engine")}
    if settings.read_database_url:
        checks["read_database"] = _read_database_check
    # Added first, so it runs inside the request-context stage (request id, metrics, log).
    app.add_middleware(AdminGuard, admin_token=settings.admin_token)
    install_common(
        app,
        service="api_server",
        checks=checks,
        max_body_bytes=MAX_BODY_BYTES,
        metrics=metrics,
    )
    add_database_error_handler(app)
    for router in (catalog_router, rankings_router, stats_router, admin_router):
        app.include_router(router)
    return app
