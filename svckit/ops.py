"""``/healthz``, ``/readyz`` and ``/metrics`` routes, given the app's readiness checks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from svckit.errors import ServiceUnavailable, app_error_response, request_id_of
from svckit.metrics import ServiceMetrics
from svckit.single_flight import SingleFlight

# A check raises (or times out) when its dependency is not ready; it may return a note
# (e.g. "replica down; reads use the primary") that /readyz reports instead of "ok".
ReadinessCheck = Callable[[Request], Awaitable[str | None]]
log = logging.getLogger("boxoffice.ops")


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
    # [(expires, failing, notes)] once reached: failing names the checks that failed,
    # notes what the others said ("ok", or e.g. "replica down; reads use the primary").
    verdict: list[tuple[float, dict[str, str], dict[str, str]]] = []
    deciding: SingleFlight[str, tuple[dict[str, str], dict[str, str]]] = SingleFlight()

    async def evaluate(request: Request) -> tuple[dict[str, str], dict[str, str]]:
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
        notes = {name: note for name, why, note in results if why is None}
        verdict[:] = [(time.monotonic() + verdict_ttl_s, failing, notes)]
        return failing, notes

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: 200 while the process runs."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "a dependency is not ready"}})
    async def readyz(request: Request) -> Response:
        """Readiness: 200 when every dependency answers, else 503 naming the failing ones."""
        if verdict and verdict[0][0] > time.monotonic():
            failing, notes = verdict[0][1], verdict[0][2]
        else:
            failing, notes = await deciding.run("ready", lambda _: evaluate(request))
        if not failing:
            return Response(
                orjson.dumps({"status": "ready", "checks": notes}),
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
