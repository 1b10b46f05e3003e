"""Session facts (opening time, seat count, queue policy) from api_server's
``GET /api/sessions/{id}``, cached briefly in-process. Concurrent misses for one session share
one upstream request: at on-sale time thousands of joins arrive for the same session at once."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime

import httpx
from pydantic import AwareDatetime, BaseModel, ValidationError

from gateway.queue.schemas import QueuePolicy, SessionFacts
from svckit.errors import NotFound, ServiceUnavailable
from svckit.single_flight import SingleFlight


class _PolicyBody(BaseModel):
    max_active: int
    admit_per_second: float
    pre_queue_opens_at: AwareDatetime | None = None
    shuffle_at_open: bool = True


class _SessionBody(BaseModel):
    id: int
    booking_opens_at: AwareDatetime
    seat_count: int
    queue: _PolicyBody | None = None


class SessionFactsClient:
    """Cached reader of session facts; unknown session → ``NotFound``, api_server down →
    ``ServiceUnavailable`` (never a guess: the opening time gates joining).

    At most ``max_entries`` sessions are remembered, the least recently used forgotten
    first: every join for an unknown session id adds an entry, and ids cost a client
    nothing to make up."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        default_policy: QueuePolicy,
        ttl_s: float = 5.0,
        missing_ttl_s: float = 1.0,
        max_entries: int = 10_000,
    ) -> None:
        self.client = client
        self.default_policy = default_policy
        self.ttl_s = ttl_s
        self.missing_ttl_s = missing_ttl_s
        self.max_entries = max_entries
        self._cache: OrderedDict[int, tuple[float, SessionFacts | None]] = OrderedDict()
        self._fetching: SingleFlight[int, SessionFacts | None] = SingleFlight()

    def __len__(self) -> int:
        """How many sessions are remembered (found or missing)."""
        return len(self._cache)

    def cached(self, session_id: int) -> SessionFacts | None:
        """The cached facts, even if stale (for estimates when api_server is away)."""
        entry = self._cache.get(session_id)
        return entry[1] if entry else None

    async def get(self, session_id: int) -> SessionFacts:
        """The facts of a session (cached for ``ttl_s``)."""
        entry = self._cache.get(session_id)
        if entry is not None and entry[0] > time.monotonic():
            self._cache.move_to_end(session_id)
            facts = entry[1]
        else:
            facts = await self._fetching.run(session_id, self._fetch)
        if facts is None:
            raise NotFound(f"session {session_id} does not exist")
        return facts

    async def _fetch(self, session_id: int) -> SessionFacts | None:
        try:
            response = await self.client.get(f"/api/sessions/{session_id}")
        except httpx.HTTPError as e:
            raise ServiceUnavailable(
                f"session facts unavailable: {type(e).__name__}", retry_after=1
            ) from e
        if response.status_code == 404:
            self._remember(session_id, time.monotonic() + self.missing_ttl_s, None)
            return None
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"session facts unavailable: api_server answered {response.status_code}",
                retry_after=1,
            )
        try:
            body = _SessionBody.model_validate_json(response.content)
        except ValidationError as e:
            raise ServiceUnavailable("session facts unreadable", retry_after=1) from e
        policy = (
            QueuePolicy(body.queue.max_active, body.queue.admit_per_second)
            if body.queue
            else self.default_policy
        )
        facts = SessionFacts(
            session_id=body.id,
            booking_opens_at=body.booking_opens_at,
            seat_count=body.seat_count,
            policy=policy,
            pre_queue_opens_at=body.queue.pre_queue_opens_at if body.queue else None,
            shuffle_at_open=body.queue.shuffle_at_open if body.queue else True,
        )
        self._remember(session_id, time.monotonic() + self.ttl_s, facts)
        return facts

    def _remember(self, session_id: int, expires: float, facts: SessionFacts | None) -> None:
        cache = self._cache
        cache[session_id] = (expires, facts)
        cache.move_to_end(session_id)
        if len(cache) > self.max_entries:
            cache.popitem(last=False)


def opens_in_s(facts: SessionFacts, now: datetime) -> float:
    """Seconds until joining opens (<= 0 once open): the pre-queue's opening when the
    session has one, else booking's."""
    return (joining_opens_at(facts) - now).total_seconds()


def joining_opens_at(facts: SessionFacts) -> datetime:
    """When the first user may join: the pre-queue's opening, else booking's."""
    return facts.pre_queue_opens_at or facts.booking_opens_at


def epoch_ms(at: datetime | None) -> int:
    """Epoch milliseconds of ``at`` (0 for None), as the queue scripts compare times."""
    return 0 if at is None else int(at.timestamp() * 1000)
