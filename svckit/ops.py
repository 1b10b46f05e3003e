"""``/healthz``, ``/readyz`` and ``/metrics`` routes, given the app's readiness checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from svckit.errors import ServiceUnavailable, app_error_response, request_id_of
from svckit.metrics import ServiceMetrics
from svckit.single_flight import SingleFlight

ReadinessCheck = Callable[[Request], Awaitable[None]]


def ops_router(
    *,
    metrics: ServiceMetrics,
    checks: dict[str, ReadinessCheck],
    timeout_s: float = 2.0,
    verdict_ttl_s: float = 1.0,
) -> APIRouter:
    """Operations routes. Each check raises (or times out) when its dependency is not ready.

    The readiness verdict is shared for ``verdict_ttl_s``, and by every request that comes
    while it is being reached: ``/readyz`` needs no credentials, and a flood of it must not
    become a flood on the dependencies (issue 16)."""
    router = APIRouter(tags=["operations"])
    verdict: list[tuple[float, dict[str, str]]] = []  # [(expires, failing)] once reached
    deciding: SingleFlight[str, dict[str, str]] = SingleFlight()

    async def evaluate(request: Request) -> dict[str, str]:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str | None]:
            try:
                await asyncio.wait_for(check(request), timeout_s)
            except TimeoutError:
                return name, f"no answer within {timeout_s}s"
            except Exception as e:  # any failure means "not ready"; the reason is reported
                return name, f"{type(e).__name__}: {e}"[:300]
            return name, None

        results = await asyncio.gather(*(run(n, c) for n, c in checks.items()))
        failing = {name: why for name, why in results if why is not None}
        verdict[:] = [(time.monotonic() + verdict_ttl_s, failing)]
        return failing

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: 200 while the process runs."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "a dependency is not ready"}})
    async def readyz(request: Request) -> Response:
        """Readiness: 200 when every dependency answers, else 503 naming the failing ones."""
        if verdict and verdict[0][0] > time.monotonic():
            failing = verdict[0][1]
        else:
            failing = await deciding.run("ready", lambda _: evaluate(request))
        if not failing:
            return Response(
                orjson.dumps({"status": "ready", "checks": dict.fromkeys(checks, "ok")}),
                media_type="application/json",
            )
        detail = "not ready: " + ", ".join(sorted(failing))
        not_ready = ServiceUnavailable(detail, slug="not-ready", failing=failing)
        return app_error_response(not_ready, request_id_of(request))

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of this process's metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
