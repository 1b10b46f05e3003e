"""The contract between the gateway's front layer and the rate limiter (``gateway/ratelimit/``).

How it hooks in:

- The lifespan in ``gateway/app.py`` sets ``app.state.rate_limiter`` (None = no limiting).
- For every ``/api/*`` request (proxied and gateway-owned alike) the front layer
  (``gateway/front/rate_limit.py``) computes the route group (the ``group`` of the matching
  route-table entry, e.g. ``"browse"``, ``"auth"``, ``"queue"``, ``"ticketing-write"``) and
  the subject:
  ``"user:<user_id>"`` when the request carries a valid Bearer token, else
  ``"ip:<address>"`` where the address comes from ``app.state.client_address`` (a
  :class:`ClientAddressResolver`, default: the socket peer). The rate-limit package replaces
  that resolver to honour ``X-Forwarded-For`` from trusted proxies.
- It then calls ``decision = await limiter.hit(group, subject)``. Allowed → the request goes
  on and ``decision.headers`` are added to its response. Not allowed → a ``decision.status``
  (429, or 503 when the limiter fails closed) problem+json with
  ``Retry-After: decision.retry_after`` and ``decision.headers``; the upstream is never called.
- ``hit`` must not raise for Redis trouble (it decides open/closed/local itself); if it does
  raise anyway the front layer answers 503 rather than 500.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, Protocol

Scope = MutableMapping[str, Any]


class RateLimitDecision(Protocol):
    """What ``hit`` returns (``gateway.ratelimit.LimitDecision`` satisfies it)."""

    @property
    def allowed(self) -> bool: ...

    @property
    def headers(self) -> Sequence[tuple[bytes, bytes]]: ...

    @property
    def retry_after(self) -> int: ...

    @property
    def status(self) -> int:
        """When not allowed: 429 over the limit, 503 when the limiter fails closed."""
        ...


class RateLimiter(Protocol):
    """Counts one request of ``subject`` against the policy of route group ``group``."""

    async def hit(self, group: str, subject: str) -> RateLimitDecision: ...


# Given the ASGI scope of a request, the client address to key anonymous requests by.
ClientAddressResolver = Callable[[Scope], str]


def socket_peer(scope: Scope) -> str:
    """The default resolver: the TCP peer's address (``"unknown"`` if the server gives none)."""
    client = scope.get("client")
    if client:
        return str(client[0])
    return "unknown"
