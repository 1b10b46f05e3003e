"""The api_server application factory (``uvicorn api_server.app:create_app --factory``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI, Request
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api_server.admin.guard import AdminGuard
from api_server.admin.router import router as admin_router
from api_server.catalog.router import router as catalog_router
from api_server.config import Settings
from api_server.errors import add_database_error_handler
from api_server.rankings.router import router as rankings_router
from api_server.stats.router import router as stats_router
from shared.db.engine import make_engine, make_session_factory
from svckit.app import install_common
from svckit.gc_tuning import freeze_startup_heap
from svckit.logs import configure_logging
from svckit.ops import ReadinessCheck

MAX_BODY_BYTES = 1024 * 1024


class State(TypedDict):
    """What the lifespan yields; every request sees it as ``request.state``."""

    settings: Settings
    engine: Engine
    read_engine: Engine
    session_factory: sessionmaker[Session]
    read_session_factory: sessionmaker[Session]


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _engine_check(attr: str) -> ReadinessCheck:
    async def check(request: Request) -> None:
        # pymysql is blocking: ping in a thread so a dead database cannot stall the loop;
        # svckit's /readyz bounds the wait.
        await asyncio.to_thread(_ping, getattr(request.state, attr))

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine(s) are created in the lifespan and disposed on shutdown."""
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        engine = make_engine(settings.resolved_database_url())
        read_engine = (
            make_engine(settings.read_database_url) if settings.read_database_url else engine
        )
        freeze_startup_heap(settings.gc_freeze)
        try:
            yield {
                "settings": settings,
                "engine": engine,
                "read_engine": read_engine,
                "session_factory": make_session_factory(engine),
                "read_session_factory": make_session_factory(read_engine),
            }
        finally:
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
        checks["read_database"] = _engine_check("read_engine")
    # Added first, so it runs inside the request-context stage (request id, metrics, log).
    app.add_middleware(AdminGuard, admin_token=settings.admin_token)
    install_common(app, service="api_server", checks=checks, max_body_bytes=MAX_BODY_BYTES)
    add_database_error_handler(app)
    for router in (catalog_router, rankings_router, stats_router, admin_router):
        app.include_router(router)
    return app
