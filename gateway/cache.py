"""Micro-caching with request coalescing for hot anonymous GETs (issue 8).

At on-sale time everybody loads the same few pages (the performance, the session). Like
nginx's ``proxy_cache`` + ``proxy_cache_lock`` or Kong's proxy-cache, the gateway keeps an
upstream answer for a short TTL per route group and lets only one request per key go
upstream at a time: everyone else asking for that key meanwhile awaits the same answer.

What is never cached, so that a cached answer cannot depend on who asked:

- requests that carry identity: ``Authorization``, ``Cookie``, ``X-Admission-Token`` or any
  client identity header (they bypass the cache entirely, coalescing included);
- answers marked ``Cache-Control: no-store`` / ``private`` / ``no-cache`` or ``max-age=0``
  (``s-maxage`` / ``max-age`` shorter than the group's TTL shorten it), answers with
  ``Set-Cookie``, and answers that ``Vary`` on anything but ``Accept`` / ``Accept-Encoding``
  (those two are part of the key already);
- statuses other than the RFC 9110 heuristically cacheable ones (no 5xx, no 429), and bodies
  over ``max_body_bytes``.

When the leader's answer turns out not storable, the requests that waited for it each go
upstream themselves (as nginx does after the lock): a ``private`` answer is never handed to
somebody else. A failure (exception) of the leader's fetch is shared with its waiters: they
asked at the same moment, and the upstream just failed.

The client's own ``Cache-Control`` is ignored (as nginx does by default): a crowd sending
``no-cache`` must not be able to switch the protection off.

The module is transport-agnostic: the proxy hands ``fetch`` a coroutine that returns the
buffered upstream answer as a ``CachedResponse``; see ``MicroCache.fetch``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

RawHeaders = list[tuple[bytes, bytes]]

# RFC 9110 §15.1: statuses cacheable by default (heuristic freshness).
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# A request carrying any of these is about somebody: never served from or into the cache.
IDENTITY_REQUEST_HEADERS = frozenset(
    {b"authorization", b"cookie", b"x-admission-token", b"proxy-authorization"}
)
# Request headers that select a representation; part of the key, so Vary on them is fine.
KEY_HEADERS = (b"accept", b"accept-encoding")
# Per-request or per-hop response headers that must not be replayed to another request.
_NOT_STORED = frozenset(
    {
        b"x-request-id",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"date",
        b"server",
        b"age",
        b"x-cache",
    }
)


class CacheStatus(StrEnum):
    """How a request was answered (sent as ``X-Cache`` and counted)."""

    HIT = "HIT"  # from the cache
    MISS = "MISS"  # went upstream (the leader of its key)
    COALESCED = "COALESCED"  # waited for the leader's upstream request
    BYPASS = "BYPASS"  # not a cacheable request (identity, method, group)


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A fully buffered upstream answer: status, lower-cased raw headers, body."""

    status: int
    headers: RawHeaders
    body: bytes


@dataclass(slots=True)
class _Entry:
    response: CachedResponse
    stored_at: float
    expires_at: float


@dataclass
class CacheStats:
    """Counters for metrics and tests."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    bypassed: int = 0
    not_stored: int = 0
    evicted: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class _NotShared(Exception):
    """The leader's answer may not be given to the waiters: each fetches its own."""

    def __init__(self, response: CachedResponse) -> None:
        super().__init__("answer not storable")
        self.response = response


Fetch = Callable[[], Awaitable[CachedResponse]]


class MicroCache:
    """A bounded (LRU) in-process cache with per-group TTLs and one upstream request per key
    in flight. One instance per gateway process; state is lost on restart (it is a cache)."""

    def __init__(
        self,
        ttl_by_group: Mapping[str, float],
        *,
        max_entries: int = 2048,
        max_body_bytes: int = 256 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl_by_group = {g: float(t) for g, t in ttl_by_group.items() if t > 0}
        self.max_entries = max_entries
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.stats = CacheStats()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._flights: dict[bytes, asyncio.Task[CachedResponse]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    # --- deciding ------------------------------------------------------------------------------

    def key_for(
        self, group: str, method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]]
    ) -> bytes | None:
        """The cache key of a request (``target`` = raw path and query), or None when the
        request must bypass the cache. ``headers``: lower-cased raw request headers."""
        if method != "GET" or group not in self.ttl_by_group:
            return None
        selected: dict[bytes, bytes] = {}
        for name, value in headers:
            if name in IDENTITY_REQUEST_HEADERS or _is_identity(name):
                return None
            if name in KEY_HEADERS:
                selected[name] = value.strip().lower()
        parts = [group.encode(), target]
        parts.extend(selected.get(h, b"") for h in KEY_HEADERS)
        return b"\x00".join(parts)

    def storable_ttl(self, group: str, response: CachedResponse) -> float:
        """How long ``response`` may be kept (0: not at all)."""
        ttl = self.ttl_by_group.get(group, 0.0)
        if response.status not in CACHEABLE_STATUSES or len(response.body) > self.max_body_bytes:
            return 0.0
        for name, value in response.headers:
            if name == b"set-cookie":
                return 0.0
            if name == b"vary":
                varies = {v.strip().lower() for v in value.split(b",") if v.strip()}
                if not varies <= set(KEY_HEADERS):
                    return 0.0
            elif name == b"cache-control":
                ttl = min(ttl, _cache_control_ttl(value, ttl))
        return max(ttl, 0.0)

    # --- serving -------------------------------------------------------------------------------

    def lookup(self, key: bytes) -> CachedResponse | None:
        """A fresh cached answer for ``key`` (with ``Age``), else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return _with_age(entry.response, now - entry.stored_at)

    async def fetch(
        self, group: str, key: bytes | None, upstream: Fetch
    ) -> tuple[CachedResponse, CacheStatus]:
        """Answer a request: from the cache, by joining the in-flight upstream request for
        ``key``, or by making it. ``key`` None (see ``key_for``) means bypass: just call
        ``upstream``. Exceptions of ``upstream`` propagate (to every caller sharing it)."""
        if key is None:
            self.stats.bypassed += 1
            return await upstream(), CacheStatus.BYPASS
        cached = self.lookup(key)
        if cached is not None:
            self.stats.hits += 1
            return cached, CacheStatus.HIT
        flight = self._flights.get(key)
        if flight is not None:
            try:
                # shield: a waiter that gives up (client gone) must not cancel the flight
                # everyone else is waiting for.
                response = await asyncio.shield(flight)
            except _NotShared:
                self.stats.bypassed += 1
                return await upstream(), CacheStatus.BYPASS
            self.stats.coalesced += 1
            return response, CacheStatus.COALESCED
        # The upstream request runs as its own task: if the leader's client goes away, the
        # waiters still get their answer (and the cache its entry).
        flight = asyncio.get_running_loop().create_task(self._fly(group, key, upstream))
        self._flights[key] = flight
        flight.add_done_callback(lambda _t: self._land(key, flight))
        self.stats.misses += 1
        try:
            response = await asyncio.shield(flight)
        except _NotShared as e:
            return e.response, CacheStatus.MISS
        return response, CacheStatus.MISS

    async def _fly(self, group: str, key: bytes, upstream: Fetch) -> CachedResponse:
        response = await upstream()
        ttl = self.storable_ttl(group, response)
        if ttl <= 0:
            self.stats.not_stored += 1
            raise _NotShared(response)
        # Everyone sharing this flight (and later hits) gets the answer without the leader's
        # per-request headers (its X-Request-ID above all): each caller adds its own.
        stored = CachedResponse(
            status=response.status,
            headers=[(n, v) for n, v in response.headers if n not in _NOT_STORED],
            body=response.body,
        )
        now = self.clock()
        self._entries[key] = _Entry(stored, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.stats.evicted += 1
        return stored

    def _land(self, key: bytes, flight: asyncio.Task[CachedResponse]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: nobody may be left to await a failed flight

    def clear(self) -> None:
        """Forget every entry (in-flight requests finish normally)."""
        self._entries.clear()


# Prefixes of client identity claims (the proxy strips them anyway; a request carrying one is
# still treated as personal). Kept here, not imported from gateway/proxy.py, so the proxy can
# import this module without a cycle.
_IDENTITY_PREFIXES = (
    b"x-user",
    b"x-auth",
    b"x-consumer",
    b"x-remote-user",
    b"remote-user",
    b"x-forwarded-user",
    b"x-admission",
)


def _is_identity(name: bytes) -> bool:
    return name.startswith(_IDENTITY_PREFIXES)


def _cache_control_ttl(value: bytes, ttl: float) -> float:
    """The TTL a response's ``Cache-Control`` allows, at most ``ttl``."""
    shared_max_age: float | None = None
    max_age: float | None = None
    for directive in value.lower().split(b","):
        name, _, arg = directive.strip().partition(b"=")
        if name in (b"no-store", b"private", b"no-cache"):
            return 0.0
        try:
            seconds = float(arg.strip(b'"')) if arg else None
        except ValueError:
            return 0.0  # unparseable freshness: do not guess
        if name == b"s-maxage":
            shared_max_age = seconds
        elif name == b"max-age":
            max_age = seconds
    limit = shared_max_age if shared_max_age is not None else max_age
    return ttl if limit is None else min(ttl, limit)


def _with_age(response: CachedResponse, age_s: float) -> CachedResponse:
    headers = [*response.headers, (b"age", str(int(age_s)).encode())]
    return CachedResponse(status=response.status, headers=headers, body=response.body)
