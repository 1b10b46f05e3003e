"""``/healthz``, ``/readyz`` and ``/metrics`` routes, given the app's readiness checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from shared.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type
from svckit.metrics import ServiceMetrics

# A check raises (or times out) when its dependency is not ready; it may return a note
# (e.g. "replica down; reads use the primary") that /readyz reports instead of "ok".
ReadinessCheck = Callable[[Request], Awaitable[str | None]]
log = logging.getLogger("boxoffice.ops")


def ops_router(
    *,
    metrics: ServiceMetrics,
    checks: dict[str, ReadinessCheck],
    timeout_s: float = 2.0,
) -> APIRouter:
    """Operations routes. Each check raises (or times out) when its dependency is not ready."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: 200 while the process runs."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "a dependency is not ready"}})
    async def readyz(request: Request) -> Response:
        """Readiness: 200 when every dependency answers, else 503 naming the failing ones."""

        async def run(name: str, check: ReadinessCheck) -> tuple[str, str | None, str]:
            try:
                note = await asyncio.wait_for(check(request), timeout_s)
            except TimeoutError:
                return name, f"no answer within {timeout_s}s", ""
            except Exception as e:  # any failure means "not ready"
                # The message may name an internal address ("connect to 10.0.0.5:8001"):
                # it goes to the log; the public answer names only the kind of failure.
                log.warning("readiness check %s failed: %s: %s", name, type(e).__name__, e)
                return name, type(e).__name__, ""
            return name, None, note or "ok"

        results = await asyncio.gather(*(run(n, c) for n, c in checks.items()))
        failing = {name: why for name, why, _ in results if why is not None}
        if not failing:
            return Response(
                orjson.dumps(
                    {"status": "ready", "checks": {name: note for name, _, note in results}}
                ),
                media_type="application/json",
            )
        body = problem_body(
            status=503,
            title="Service Unavailable",
            detail="not ready: " + ", ".join(sorted(failing)),
            type_=problem_type("not-ready"),
            request_id=request.scope.get("state", {}).get("request_id"),
            failing=failing,
        )
        return Response(
            orjson.dumps(body),
            status_code=503,
            media_type=PROBLEM_CONTENT_TYPE,
            headers={"Retry-After": "1"},
        )

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of this process's metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
