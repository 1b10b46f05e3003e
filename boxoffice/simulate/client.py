"""The crowd's HTTP client (one keep-alive pool for everybody), and the recording of every
request.

The simulator shares two cores with the system it measures, so its client must be cheap:
the crowd's requests go through the gateway's own httptools transport
(``svckit/http_transport.py``), bytes in and bytes out: the simulator's CPU per request
fell from 0.38–0.51 ms on aiohttp to 0.22–0.34 ms (docs/benchmarks-history.md, third
session). Server-Sent Events streams use aiohttp, the few set-up and verification calls httpx
(``make_http_client``)."""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson

from svckit.http_transport import FastTransport

# Status recorded for a request that got no HTTP answer (refused, reset, timed out).
TRANSPORT_ERROR = 0
_RETRYABLE = {TRANSPORT_ERROR, 502, 503, 504}


class Sample(NamedTuple):
    """One request: when it started (seconds from booking open), its step, latency, status.

    A tuple of atomic values, which the garbage collector stops tracking: a run keeps tens of
    thousands of them, and each tracked one would lengthen the pauses the simulator measures
    its own latencies through."""

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
    # "step X-Cache" counts: how the gateway's micro-cache answered (HIT, MISS, COALESCED).
    cache_answers: Counter[str] = field(default_factory=Counter)

    def record(self, step: str, started: float, ms: float, status: int) -> None:
        """Keep one request's figures."""
        self.samples.append(Sample(started - self.t0, step, ms, status))

    def rebase(self, t0: float) -> None:
        """Make ``t0`` the origin, also for the samples recorded before it was known."""
        delta = t0 - self.t0
        self.samples = [s._replace(t=s.t - delta) for s in self.samples]
        self.t0 = t0

    def count(self) -> int:
        """How many requests were made."""
        return len(self.samples)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete HTTP answer."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.content)


def make_http_client(*, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An httpx client for setting up and verifying (a handful of requests)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0))


def make_session(*, timeout_s: float = 30.0) -> aiohttp.ClientSession:
    """The session of the crowd's event streams (``--wait sse``): no connection cap, as
    the streams are long-lived and one per waiter."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=3.0),
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0),
    )


class SimClient:
    """Requests on behalf of simulated people: bounded in flight, recorded, with the retries a
    browser or an SDK would do (``Retry-After`` on 429/503, a few tries on 502/504/reset).
    Like a browser it asks for gzip (the seat map is sent compressed)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        recorder: Recorder,
        *,
        concurrency: int,
        retries: int = 3,
        timeout_s: float = 30.0,
    ) -> None:
        self.session = session  # for event streams
        self.recorder = recorder
        self.retries = retries
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close
        # them under us (the crowd idles between logging in and the opening).
        self.transport = FastTransport(
            max_connections=concurrency, connect_timeout_s=10.0, keepalive_s=3.0
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.transport.aclose()

    async def call(
        self,
        step: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        max_429: int = 20,
    ) -> Reply | None:
        """Send one logical request (retrying as described); None if every try failed to
        get an HTTP answer. The last answer is returned whatever its status."""
        tries_left = self.retries
        throttled = 0
        body = None if json is None else orjson.dumps(json)
        raw_headers = [(b"accept-encoding", b"gzip")]
        if headers:
            raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if body is not None:
            raw_headers.append((b"content-type", b"application/json"))
        while True:
            response = await self._once(step, method.encode(), url, raw_headers, body)
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
        method: bytes,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> Reply | None:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        target = (parts.path + ("?" + parts.query if parts.query else "")).encode()
        host_header = parts.netloc.encode()
        async with self._slots:
            for attempt in (1, 2):
                started = time.time()
                t = time.perf_counter()
                try:
                    raw = await self.transport.request_raw(
                        method,
                        host,
                        port,
                        target,
                        headers,
                        body,
                        host_header=host_header,
                        connect_timeout=10.0,
                        read_timeout=self.timeout_s,
                    )
                    try:
                        content = b"".join([chunk async for chunk in raw])
                    finally:
                        await raw.aclose()
                    reply = _reply(raw.status, raw.headers, content)
                    break
                except (httpx.RemoteProtocolError, httpx.ReadError) as e:
                    if attempt == 1:
                        # A pooled keep-alive connection the server closed just as we reused
                        # it: browsers resend at once on a fresh connection, and so do we.
                        self.recorder.transport_errors[f"{step}: stale connection, resent"] += 1
                        continue
                    error: Exception = e
                except (httpx.HTTPError, OSError, zlib.error) as e:
                    error = e
                self.recorder.record(step, started, (time.perf_counter() - t) * 1000, 0)
                self.recorder.transport_errors[f"{step}: {type(error).__name__}"] += 1
                return None
            status = reply.status_code
            self.recorder.record(step, started, (time.perf_counter() - t) * 1000, status)
            cache = reply.headers.get("x-cache")
            if cache is not None:
                self.recorder.cache_answers[f"{step} {cache}"] += 1
            if status >= 400 and f"{step} {status}" not in self.recorder.error_examples:
                self.recorder.error_examples[f"{step} {status}"] = reply.text[:300]
            return reply

    async def events(
        self, step: str, url: str, headers: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """Follow a Server-Sent Events stream: yields each ``data:`` payload parsed as JSON;
        ends when the stream does (or on a transport error, which is recorded)."""
        started = time.time()
        t = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
        try:
            async with self.session.get(url, headers=headers, timeout=timeout) as r:
                self.recorder.record(step, started, (time.perf_counter() - t) * 1000, r.status)
                if r.status != 200:
                    return
                async for raw in r.content:
                    line = raw.strip()
                    if line.startswith(b"data:"):
                        try:
                            payload = orjson.loads(line[5:])
                        except orjson.JSONDecodeError:
                            continue
                        if isinstance(payload, dict):
                            yield payload
        except (aiohttp.ClientError, TimeoutError) as e:
            self.recorder.transport_errors[f"{step}: {type(e).__name__}"] += 1


def _reply(status: int, raw_headers: list[tuple[bytes, bytes]], content: bytes) -> Reply:
    headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in raw_headers}
    if headers.get("content-encoding") == "gzip":
        content = zlib.decompress(content, wbits=31)
    return Reply(status, content, headers)


def _retry_after(response: Reply | None, *, default: float) -> float:
    if response is None:
        return default
    value = response.headers.get("retry-after")
    try:
        # Spread the retries a little, as real clients do, instead of a synchronized herd.
        return float(value) * (1 + 0.25 * random.random()) if value else default
    except ValueError:
        return default
