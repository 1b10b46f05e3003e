"""The pre-queue's draw (``QueueService`` inherits it): at opening, the closed pre-queue is
put in line by HMAC-SHA256(seed, user id), the seed committed to before anyone joined
(``shared/draw.py``); and the public record of it (``GET /api/queue/{id}/draw``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from redis.asyncio import Redis

from gateway.queue.facts import SessionFactsClient
from gateway.queue.scripts import QueueScripts, member_keys, script_keys
from gateway.queue.views import QueueUnavailable, member_of, to_int, to_str
from shared import keys
from shared.draw import commitment, draw_order
from shared.schemas.queue import QueueDraw
from svckit.errors import NotFound
from svckit.redis_client import REDIS_ERRORS

# The draw's entrants placed per call, and how long one gateway may hold the draw.
DRAW_CHUNK = 1000
DRAW_LOCK_MS = 60_000


class QueueDraws:
    """The draw side of :class:`QueueService`."""

    # Set by QueueService and QueueMemory.
    redis: Redis
    bucket_ms: int
    scripts: QueueScripts
    _stale: set[int]

    def _facts(self) -> SessionFactsClient:
        raise NotImplementedError  # QueueService's

    async def draw(self, *, session_id: int, shuffle: bool) -> bool:
        """Place the closed pre-queue in line: by HMAC-SHA256(seed, user id) ascending when
        ``shuffle``, else in join order. One gateway at a time (a lock); the script is
        idempotent, so a draw cut short is redone whole. False if another gateway holds it."""
        lock = keys.queue_draw_lock(session_id)
        token = secrets.token_hex(8)
        meta = script_keys(session_id)[1]
        try:
            if not await self.redis.set(lock, token, nx=True, px=DRAW_LOCK_MS):
                return False
            try:
                seed_hex = await self.redis.hget(meta, "seed")
                entrants = await self.redis.hgetall(script_keys(session_id)[5])
                pre = {to_str(u): to_int(p) for u, p in entrants.items()}
                if shuffle and seed_hex:
                    order = draw_order(bytes.fromhex(to_str(seed_hex)), pre)
                else:
                    order = sorted(pre, key=pre.__getitem__)
                for start in range(0, len(order), DRAW_CHUNK):
                    chunk = order[start : start + DRAW_CHUNK]
                    members = [member_of(u) for u in chunk]
                    last = start + DRAW_CHUNK >= len(order)
                    args: list[str | int] = [self.bucket_ms, start + 1, len(order) if last else 0]
                    for u, m in zip(chunk, members, strict=True):
                        args += [m, pre[u]]
                    await self.scripts.draw(
                        keys=[
                            *script_keys(session_id),
                            *(member_keys(session_id, m)[-1] for m in members),
                        ],
                        args=args,
                    )
            finally:
                if to_str(await self.redis.get(lock) or b"") == token:
                    await self.redis.delete(lock)
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e
        self._stale.add(session_id)
        return True

    async def draw_of(self, *, session_id: int) -> QueueDraw:
        """The public record of a session's draw (404 without a pre-queue): the seed's
        commitment once the pre-queue is open, the seed once booking is open."""
        facts = await self._facts().get(session_id)
        if facts.pre_queue_opens_at is None:
            raise NotFound("this session has no pre-queue")
        now = datetime.now(UTC)
        if now < facts.pre_queue_opens_at:
            return QueueDraw(session_id=session_id, commitment=None, seed=None, drawn=0)
        meta = script_keys(session_id)[1]
        try:
            # The seed is drawn now if no entrant drew it yet; HSETNX keeps the first.
            await self.redis.hsetnx(meta, "seed", secrets.token_hex(32))
            seed_hex, drawn = await self.redis.hmget(meta, ["seed", "drawn"])
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e
        seed = bytes.fromhex(to_str(seed_hex))
        return QueueDraw(
            session_id=session_id,
            commitment=commitment(seed),
            seed=seed.hex() if now >= facts.booking_opens_at else None,
            drawn=to_int(drawn or 0),
        )
