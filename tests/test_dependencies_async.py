"""The gateway and ticket_server run their endpoints and FastAPI dependencies on the event loop.

FastAPI runs a plain ``def`` dependency in its thread pool: a thread hand-off per dependency
per request. On the hot routes (guest login, queue join/status, holds) that cost showed in
the gateway's profile during the on-sale burst. api_server is left out: its dependencies
open synchronous database sessions, which belong in the thread pool.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

import gateway.app
import ticket_server.app
from gateway.testing import harness_settings
from ticket_server.config import Settings as TicketSettings


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI >= 0.16x keeps an included router as one entry wrapping the original.
        inner = getattr(route, "original_router", None) or route
        if inner is not route or isinstance(route, Mount):
            yield from _api_routes(getattr(inner, "routes", []))


def _dependants(app: FastAPI) -> Iterator[tuple[str, Dependant]]:
    for route in _api_routes(app.routes):
        stack = [route.dependant]  # the endpoint itself, then its dependencies
        while stack:
            dep = stack.pop()
            yield route.path, dep
            stack.extend(dep.dependencies)


def _runs_on_the_loop(call: object) -> bool:
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    # Security classes (HTTPBearer, APIKeyHeader) are instances with an async __call__.
    return inspect.iscoroutinefunction(type(call).__call__)


def _sync_dependencies(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (path, getattr(dep.call, "__qualname__", repr(dep.call)))
        for path, dep in _dependants(app)
        if dep.call is not None and not _runs_on_the_loop(dep.call)
    }


def test_gateway_dependencies_are_coroutines() -> None:
    app = gateway.app.create_app(harness_settings("redis://127.0.0.1:1/0"))
    assert sum(1 for _ in _dependants(app)) > 0  # the walk sees the dependencies at all
    assert _sync_dependencies(app) == set()


def test_ticket_server_dependencies_are_coroutines() -> None:
    app = ticket_server.app.create_app(
        TicketSettings(redis_url="redis://127.0.0.1:1/0", database_url="sqlite://")
    )
    assert sum(1 for _ in _dependants(app)) > 0
    assert _sync_dependencies(app) == set()
