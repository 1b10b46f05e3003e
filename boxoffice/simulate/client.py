"""One pooled HTTP client for the whole crowd, and the recording of every request."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# Status recorded for a request that got no HTTP answer (refused, reset, timed out).
TRANSPORT_ERROR = 0
_RETRYABLE = {TRANSPORT_ERROR, 502, 503, 504}


@dataclass(slots=True)
class Sample:
    """One request: when it started (seconds from booking open), its step, latency, status."""

    t: float
    step: str
    ms: float
    status: int


@dataclass
class Recorder:
    """Every request the simulator made; ``t0`` is the wall time booking opens."""

    t0: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    transport_errors: Counter[str] = field(default_factory=Counter)
    # The first answer body seen per "step status" for statuses >= 400 (diagnosis).
    error_examples: dict[str, str] = field(default_factory=dict)

    def record(self, step: str, started: float, ms: float, status: int) -> None:
        """Keep one request's figures."""
        self.samples.append(Sample(started - self.t0, step, ms, status))

    def count(self) -> int:
        """How many requests were made."""
        return len(self.samples)


def make_http_client(*, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """The crowd's client: httpx's API on aiohttp's transport when available (stock httpcore
    burns CPU per pooled connection, and the simulator shares the machine with the system
    under test), with no connection cap of its own: ``SimClient`` bounds concurrency."""
    timeout = httpx.Timeout(timeout_s, connect=10.0)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:  # pragma: no cover - the dependency is declared
        return httpx.AsyncClient(timeout=timeout, limits=limits)
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout)


class SimClient:
    """Requests on behalf of simulated people: bounded in flight, recorded, with the retries a
    browser or an SDK would do (``Retry-After`` on 429/503, a few tries on 502/504/reset)."""

    def __init__(
        self, http: httpx.AsyncClient, recorder: Recorder, *, concurrency: int, retries: int = 3
    ) -> None:
        self.http = http
        self.recorder = recorder
        self.retries = retries
        self._slots = asyncio.Semaphore(concurrency)

    async def call(
        self,
        step: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        max_429: int = 20,
    ) -> httpx.Response | None:
        """Send one logical request (retrying as described); None if every try failed to
        get an HTTP answer. The last response is returned whatever its status."""
        tries_left = self.retries
        throttled = 0
        while True:
            response = await self._once(step, method, url, headers, json)
            status = TRANSPORT_ERROR if response is None else response.status_code
            if status == 429 and throttled < max_429:
                throttled += 1
                await asyncio.sleep(_retry_after(response, default=0.5))
                continue
            if status in _RETRYABLE and tries_left > 0:
                tries_left -= 1
                await asyncio.sleep(_retry_after(response, default=0.2 * random.random() + 0.1))
                continue
            return response

    async def _once(
        self,
        step: str,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        json: Any,
    ) -> httpx.Response | None:
        async with self._slots:
            started = time.time()
            t = time.perf_counter()
            try:
                response = await self.http.request(method, url, headers=headers, json=json)
            except httpx.HTTPError as e:
                self.recorder.record(step, started, (time.perf_counter() - t) * 1000, 0)
                self.recorder.transport_errors[f"{step}: {type(e).__name__}"] += 1
                return None
            status = response.status_code
            self.recorder.record(step, started, (time.perf_counter() - t) * 1000, status)
            if status >= 400 and f"{step} {status}" not in self.recorder.error_examples:
                self.recorder.error_examples[f"{step} {status}"] = response.text[:300]
            return response


def _retry_after(response: httpx.Response | None, *, default: float) -> float:
    if response is None:
        return default
    value = response.headers.get("retry-after")
    try:
        # Spread the retries a little, as real clients do, instead of a synchronized herd.
        return float(value) * (1 + 0.25 * random.random()) if value else default
    except ValueError:
        return default
