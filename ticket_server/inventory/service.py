"""Loading a session's seat map into Redis once, and reading the live seat map.

The first request that needs a session takes a lock (``SET NX PX``) and copies the seats
from the catalog; concurrent first requests wait for it instead of loading again. The
reservations the database already holds are restored with them (``restore.lua``), so a
Redis that lost its data (a restart without persistence, a flush) heals on the next
request: sold seats stay sold and ranks continue after the highest one stored. The
scripts report ``not_loaded`` when the session is missing from Redis, so the hot path
costs no extra round trip: only a miss calls :meth:`Inventory.ensure_loaded`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources

import anyio
import anyio.to_thread
import orjson
from redis.asyncio import Redis
from sqlalchemy import Engine

from shared import keys
from shared.schemas.common import price_json
from svckit.single_flight import SingleFlight
from ticket_server.errors import NotFound, ServiceUnavailable
from ticket_server.inventory.repository import SeatRow, SessionSeats, load_session_seats
from ticket_server.metrics import BookingMetrics
from ticket_server.scripts import ScriptCall

log = logging.getLogger("boxoffice.ticket_server")

# The load lock outlives the load by this much. The load itself gives up at its deadline
# (load_wait_s), so a lock whose holder could not release it (its Redis master failed over
# mid-load) blocks the session only that long, not for a fixed half minute; a second load
# after an expired lock is harmless (HSETNX never overwrites live state).
_LOCK_MARGIN_MS = 1_000
_POLL_S = 0.01
_MAX_POLL_S = 0.2

# Compare-and-delete: only the loader that took the lock releases it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """The static part of a session's seat map (cached in-process: it never changes)."""

    seats: list[SeatRow]
    # Each seat's whole JSON object once per status, pre-rendered: the seat map is the most
    # polled page at on-sale time, and only the statuses change between two renderings.
    index: dict[str, int]  # position in ``seats`` by seat id, as the seat-state hash keys it
    available: list[bytes]
    held: list[bytes]
    sold: list[bytes]

    @classmethod
    def of(cls, seats: list[SeatRow]) -> SessionMeta:
        """Metadata with the pre-rendered objects (the ``SeatStatus`` field order)."""
        heads = [
            orjson.dumps(
                {
                    "seat_id": s.seat_id,
                    "label": s.label,
                    "grade": s.grade,
                    "price": price_json(Decimal(s.price)),
                }
            )[:-1]
            + b',"status":"'
            for s in seats
        ]
        return cls(
            seats=seats,
            index={str(s.seat_id): i for i, s in enumerate(seats)},
            available=[h + b'available"}' for h in heads],
            held=[h + b'held"}' for h in heads],
            sold=[h + b'sold"}' for h in heads],
        )

    def render(self, sold: str, held: str) -> list[bytes]:
        """Each seat's JSON, given the comma-separated ids of the sold and of the held seats
        (as ``seat_map.lua`` returns them); every other seat is available."""
        parts = self.available.copy()
        index = self.index
        for ids, rendered in ((sold, self.sold), (held, self.held)):
            if ids:
                for seat_id in ids.split(","):
                    i = index.get(seat_id)
                    if i is not None:
                        parts[i] = rendered[i]
        return parts


class Inventory:
    """Loads seat maps into Redis and caches their static metadata in-process."""

    def __init__(
        self,
        *,
        redis: Redis,
        seat_map: ScriptCall,
        engine: Engine,
        load_wait_s: float,
        metrics: BookingMetrics,
    ) -> None:
        self._redis = redis
        self._seat_map = seat_map
        self._metrics = metrics
        self._engine = engine
        self._load_wait_s = load_wait_s
        self._unlock = redis.register_script(_UNLOCK)
        self._restore = redis.register_script(
            resources.files("ticket_server.scripts").joinpath("restore.lua").read_text("utf-8")
        )
        self._meta: dict[int, SessionMeta] = {}
        self._loading: SingleFlight[int, None] = SingleFlight()
        self._meta_loading: SingleFlight[int, SessionMeta] = SingleFlight()

    async def ensure_loaded(self, session_id: int) -> None:
        """Make sure the session's seat map is in Redis (404 for an unknown session).

        Concurrent callers in this process share one attempt: at on-sale time hundreds of
        first requests arrive together, and each polling Redis would swamp both.
        """
        await self._loading.run(session_id, self._ensure_loaded)

    async def _ensure_loaded(self, session_id: int) -> None:
        info = keys.session_info(session_id)
        lock = keys.inventory_lock(session_id)
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self._load_wait_s
        poll_s = _POLL_S
        while True:
            if await self._redis.exists(info):
                return
            lock_ms = int(self._load_wait_s * 1000) + _LOCK_MARGIN_MS
            if await self._redis.set(lock, token, nx=True, px=lock_ms):
                try:
                    if await self._redis.exists(info):  # loaded between our two checks
                        return
                    snapshot = await self._read_catalog(session_id, deadline)
                    if snapshot is None:
                        raise NotFound(f"Session {session_id} does not exist.")
                    await self._write(snapshot)
                    self._metrics.seat_map_loads.inc()
                    return
                finally:
                    await self._unlock(keys=[lock], args=[token])
            # Someone else is loading: wait for their result (or for the lock to free, when
            # the session turned out unknown, and then look for ourselves).
            if time.monotonic() > deadline:
                raise ServiceUnavailable("The seat map is still loading; try again shortly.")
            await asyncio.sleep(poll_s)
            poll_s = min(poll_s * 2, _MAX_POLL_S)

    async def _read_catalog(self, session_id: int, deadline: float) -> SessionSeats | None:
        # pymysql has no read timeout: a hung database must not hang the request. On timeout
        # the thread is abandoned (it only reads); the lock is released by the caller.
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.1)):
                return await anyio.to_thread.run_sync(
                    load_session_seats, self._engine, session_id, abandon_on_cancel=True
                )
        except TimeoutError as e:
            raise ServiceUnavailable("The catalog did not answer; try again shortly.") from e

    async def _write(self, snap: SessionSeats) -> None:
        sid = snap.session_id
        # Registered first: the stream may exist only for sessions consumers can find.
        await self._redis.sadd(keys.EVENT_STREAMS, str(sid))
        users = {r.user_id for r in snap.reservations}
        if users:
            # The index of /me/reservations lives under each user's own hash tag (another
            # slot), so it is written ahead, like confirm does, not inside the script.
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in users:
                    pipe.sadd(keys.user_sessions(user_id), str(sid))
                await pipe.execute()
        script_keys, payload = restore_payload(snap)
        _, sold = await self._restore(keys=script_keys, args=[payload])
        if snap.reservations:
            # Reservations stored but no seat map in Redis: Redis lost its data.
            log.warning(
                "seat map rebuilt from the database's reservations",
                extra={
                    "session_id": sid,
                    "reservations": len(snap.reservations),
                    "sold_seats": int(sold),
                    "max_rank": snap.max_rank,
                },
            )
        self._meta[sid] = SessionMeta.of(snap.seats)

    async def meta(self, session_id: int) -> SessionMeta:
        """The session's static seat metadata (from memory, else Redis, else the catalog).

        The first admitted users of an on-sale all ask at once: one read builds it for all
        of them, not one per request."""
        cached = self._meta.get(session_id)
        if cached is not None:
            return cached
        return await self._meta_loading.run(session_id, self._read_meta)

    async def _read_meta(self, session_id: int) -> SessionMeta:
        await self.ensure_loaded(session_id)
        loaded_here = self._meta.get(session_id)  # this process did the load just now
        if loaded_here is not None:
            return loaded_here
        raw = await self._redis.hgetall(keys.seat_meta(session_id))
        seats = []
        for seat_id, blob in raw.items():
            label, grade, price = orjson.loads(blob)
            seats.append(SeatRow(int(seat_id), label, grade, price))
        seats.sort(key=lambda s: s.seat_id)
        meta = SessionMeta.of(seats)
        self._meta[session_id] = meta
        return meta

    async def seat_map_json(self, session_id: int) -> bytes:
        """The live seat map as ``SeatMap`` JSON: every seat with ``available``, ``held``
        or ``sold``. Rendered from the cached fragments (no model per seat)."""
        meta = await self.meta(session_id)
        for _ in range(2):
            # The statuses are decided in Redis (one script, one round trip): only the taken
            # seats' ids come back, not a 1,000-field hash to decode and walk per request.
            count, sold, held = await self._seat_map(keys=[keys.seats(session_id)])
            if count or not meta.seats:
                break
            # The session vanished from Redis after we cached its metadata: load it again.
            await self.ensure_loaded(session_id)
        parts = meta.render(_text(sold), _text(held))
        return b'{"session_id":%d,"seats":[%b]}' % (session_id, b",".join(parts))


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def restore_payload(snap: SessionSeats) -> tuple[list[str], str]:
    """KEYS and the JSON argument of ``restore.lua`` for ``snap``."""
    sid = snap.session_id
    script_keys = [
        keys.seats(sid),
        keys.seat_meta(sid),
        keys.session_info(sid),
        keys.rank_seq(sid),
        keys.ranking(sid),
        keys.sold_out_flag(sid),
    ]
    reservations = []
    for r in snap.reservations:
        script_keys += [
            keys.reservation(sid, r.reservation_id),
            keys.user_reservations(sid, r.user_id),
            keys.user_sold(sid, r.user_id),
        ]
        # The fields confirm.lua (and cancel.lua) write, so every reader sees the same hash.
        fields = {
            "reservation_id": r.reservation_id,
            "session_id": str(sid),
            "user_id": r.user_id,
            "nickname": r.nickname,
            "seat_ids": ",".join(str(s) for s in r.seat_ids),
            "status": "cancelled" if r.status == "cancelled" else "confirmed",
            "rank": str(r.rank),
            "completion_ms": str(r.completion_ms),
            "queue_position": "" if r.queue_position is None else str(r.queue_position),
            "created_ms": _ms(r.created_at),
        }
        if r.cancelled_at is not None:
            fields["cancelled_ms"] = _ms(r.cancelled_at)
        reservations.append(
            {
                "id": r.reservation_id,
                "live": r.status == "confirmed",
                "rank": str(r.rank),
                "created_ms": fields["created_ms"],
                "seat_ids": [str(s) for s in r.seat_ids],
                "fields": [x for kv in fields.items() for x in kv],
            }
        )
    meta: list[str] = []
    for s in snap.seats:
        meta += [str(s.seat_id), orjson.dumps([s.label, s.grade, s.price]).decode()]
    payload = {
        "opens_ms": str(int(snap.booking_opens_at.timestamp() * 1000)),
        "seat_count": str(len(snap.seats)),
        "max_rank": str(snap.max_rank),
        "meta": meta,
        "reservations": reservations,
    }
    return script_keys, orjson.dumps(payload).decode()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
