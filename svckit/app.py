"""Wiring shared by the three ``create_app`` factories."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from svckit.errors import add_exception_handlers
from svckit.metrics import ServiceMetrics
from svckit.middleware import RequestContextMiddleware, Scope
from svckit.ops import ReadinessCheck, ops_router


def install_common(
    app: FastAPI,
    *,
    service: str,
    checks: dict[str, ReadinessCheck],
    max_body_bytes: int = 1024 * 1024,
    metrics: ServiceMetrics | None = None,
    route_label: Callable[[Scope], str] | None = None,
) -> ServiceMetrics:
    """Add problem+json handlers, the request-context middleware and the ops routes."""
    metrics = metrics or ServiceMetrics(service)
    add_exception_handlers(app)
    app.include_router(ops_router(metrics=metrics, checks=checks))
    app.add_middleware(
        RequestContextMiddleware,
        service=service,
        metrics=metrics,
        max_body_bytes=max_body_bytes,
        route_label=route_label,
    )
    app.state.metrics = metrics
    return metrics
