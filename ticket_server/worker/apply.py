"""Turning reservation events into rows: one transaction per batch, idempotent, order-tolerant.

Why this shape:

* A reservation row is written once, by whichever transaction first sees its id (a dialect
  "insert, ignore a duplicate primary key": MySQL ``INSERT IGNORE``, SQLite ``ON CONFLICT DO
  NOTHING``). Its seat and ranking rows are written only by that same transaction, so a
  replayed event, a restart or a second worker that sees the same entry changes nothing.
* Seat and ranking rows use plain inserts on purpose: a collision there (a seat still held by
  an older reservation whose cancellation another worker has not committed yet) must fail the
  event and be retried later, never be silently ignored.
* Entries of one stream can be spread over several consumers, so a cancellation may commit
  before its completion. It then leaves a *tombstone*: a cancelled reservation row with a
  placeholder negative rank. The late completion fills in the facts but keeps the status, and
  writes no seat or ranking rows — a cancelled reservation is never resurrected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.db.models import Ranking, Reservation, ReservationSeat
from shared.events import ReservationCancelled, ReservationCompleted
from svckit.db_errors import is_data_error
from ticket_server.worker.bulk import insert_rows

Event = ReservationCompleted | ReservationCancelled

# ``__table__`` is typed as a FromClause; these are Tables (Core inserts need the type).
RESERVATIONS = cast(Table, Reservation.__table__)
SEATS = cast(Table, ReservationSeat.__table__)
RANKINGS = cast(Table, Ranking.__table__)

# Bounded IN lists: SQLite builds limit bound variables, MySQL packets have a size limit.
_IN_CHUNK = 500

T = TypeVar("T")


class BatchConflict(Exception):
    """Some rows of the batch were not written (a constraint refused them, or another worker
    wrote them at the same moment); the caller re-applies the events one by one."""


@dataclass(frozen=True)
class Taken:
    """What the database holds that a refused completion wanted: its rank, or its seats,
    already belonging to other reservations."""

    rank_holder: str | None
    seat_holders: dict[int, str]


def find_taken(engine: Engine, ev: ReservationCompleted) -> Taken:
    """Which other reservations hold ``ev``'s rank and seats (to tell why it was refused)."""
    with engine.connect() as conn:
        rank_holder = conn.execute(
            select(RESERVATIONS.c.id)
            .where(
                RESERVATIONS.c.session_id == ev.session_id,
                RESERVATIONS.c.rank == ev.rank,
                RESERVATIONS.c.id != ev.reservation_id,
            )
            .limit(1)
        ).scalar()
        seats = conn.execute(
            select(SEATS.c.seat_id, SEATS.c.reservation_id).where(
                SEATS.c.session_id == ev.session_id,
                SEATS.c.seat_id.in_(list(ev.seat_ids)),
                SEATS.c.reservation_id != ev.reservation_id,
            )
        )
        holders = {int(r.seat_id): str(r.reservation_id) for r in seats}
    return Taken(rank_holder=rank_holder, seat_holders=holders)


def is_transient(exc: BaseException) -> bool:
    """Whether a database error means "the database is unavailable or busy" (retry the same
    work later) rather than "this data is refused" (isolate the event)."""
    if is_data_error(exc):  # MariaDB raises some refusals as OperationalError
        return False
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _insert_ignoring_duplicate_ids(conn: Connection) -> Insert:
    """Insert into ``reservations`` that skips rows whose primary key already exists."""
    dialect = conn.dialect.name
    if dialect == "mysql":
        return mysql.insert(RESERVATIONS).prefix_with("IGNORE")
    if dialect == "sqlite":
        # Targeted at the primary key only: other constraint violations still raise.
        return sqlite.insert(RESERVATIONS).on_conflict_do_nothing(index_elements=["id"])
    raise NotImplementedError(f"the worker supports MySQL/MariaDB and SQLite, not {dialect}")


def _reservation_row(
    ev: ReservationCompleted, cancel: ReservationCancelled | None
) -> dict[str, Any]:
    return {
        "id": ev.reservation_id,
        "session_id": ev.session_id,
        "user_id": ev.user_id,
        "nickname": ev.nickname,
        "status": "cancelled" if cancel else "confirmed",
        "rank": ev.rank,
        "completion_ms": ev.completion_ms,
        "queue_position": ev.queue_position,
        "seat_ids": list(ev.seat_ids),
        "seat_count": len(ev.seat_ids),
        "created_at": ev.created_at,
        "cancelled_at": cancel.cancelled_at if cancel else None,
    }


def _existing(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``id -> (status, rank)`` of the reservations already stored."""
    found: dict[str, tuple[str, int]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            select(RESERVATIONS.c.id, RESERVATIONS.c.status, RESERVATIONS.c.rank).where(
                RESERVATIONS.c.id.in_(chunk)
            )
        )
        found.update({r.id: (r.status, r.rank) for r in rows})
    return found


def _tombstone_ranks(conn: Connection, session_ids: Iterable[int]) -> dict[int, int]:
    """Per session, the next free placeholder rank (negative, below every rank in use)."""
    sessions = sorted(set(session_ids))
    lowest = dict.fromkeys(sessions, 0)
    rows = conn.execute(
        select(RESERVATIONS.c.session_id, func.min(RESERVATIONS.c.rank))
        .where(RESERVATIONS.c.session_id.in_(sessions))
        .group_by(RESERVATIONS.c.session_id)
    )
    for session_id, low in rows:
        lowest[session_id] = min(lowest[session_id], low or 0)
    return {s: low - 1 for s, low in lowest.items()}


def _insert_all_new(conn: Connection, completions: dict[str, ReservationCompleted]) -> bool:
    """The common batch, only completions never seen before, without looking them up first
    (the lookup costs as much as the insert): insert under a savepoint, and undo it if any
    row was skipped (seen before, or refused) so the careful path can take over.

    MySQL only: pysqlite's own transaction handling does not mix with savepoints, and
    SQLite is the single-user development backend anyway."""
    if conn.dialect.name != "mysql":
        return False
    rows = [_reservation_row(ev, None) for ev in completions.values()]
    savepoint = conn.begin_nested()
    try:
        written = insert_rows(conn, _insert_ignoring_duplicate_ids(conn), RESERVATIONS, rows)
    except DBAPIError as e:
        if is_transient(e):
            raise  # the whole transaction is lost anyway; the caller retries it
        savepoint.rollback()
        return False
    if written != len(rows):
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def apply_events(conn: Connection, events: Sequence[Event]) -> None:
    """Apply ``events`` (in stream order) inside the caller's transaction.

    Raises :class:`BatchConflict` when some rows could not be written, and the driver's
    errors (wrapped by SQLAlchemy) otherwise; the caller rolls back either way.
    """
    completions: dict[str, ReservationCompleted] = {}
    cancels: dict[str, ReservationCancelled] = {}
    for ev in events:
        if isinstance(ev, ReservationCompleted):
            completions.setdefault(ev.reservation_id, ev)
        else:
            cancels.setdefault(ev.reservation_id, ev)
    if not completions and not cancels:
        return
    if not cancels and _insert_all_new(conn, completions):
        existing: dict[str, tuple[str, int]] = {}
        new_rows = []  # written just now
    else:
        existing = _existing(conn, list(completions.keys() | cancels.keys()))
        new_rows = [
            _reservation_row(ev, cancels.get(rid))
            for rid, ev in completions.items()
            if rid not in existing
        ]

    # 1. Reservations seen for the first time, already cancelled if the batch says so.
    if new_rows:
        written = insert_rows(conn, _insert_ignoring_duplicate_ids(conn), RESERVATIONS, new_rows)
        if written != len(new_rows):
            raise BatchConflict(
                f"{len(new_rows) - written} of {len(new_rows)} reservations refused"
            )

    # 2. Late completions of tombstones: fill in the facts, keep the cancellation.
    fills = [
        {"rid": rid, **_reservation_row(ev, None)}
        for rid, ev in completions.items()
        if rid in existing and existing[rid][1] < 0
    ]
    if fills:
        conn.execute(
            update(RESERVATIONS)
            .where(RESERVATIONS.c.id == bindparam("rid"), RESERVATIONS.c.rank < 0)
            .values(
                {
                    c: bindparam(c)
                    for c in ("nickname", "rank", "completion_ms", "queue_position", "created_at")
                }
            ),
            [
                {
                    k: f[k]
                    for k in (
                        "rid",
                        "nickname",
                        "rank",
                        "completion_ms",
                        "queue_position",
                        "created_at",
                    )
                }
                for f in fills
            ],
        )

    # 3. Cancellations of stored reservations; their seats and ranking entry go first, so a
    #    seat re-sold later in this very batch can be inserted below.
    stored_cancels = [ev for rid, ev in cancels.items() if rid in existing]
    if stored_cancels:
        conn.execute(
            update(RESERVATIONS)
            .where(RESERVATIONS.c.id == bindparam("rid"), RESERVATIONS.c.status == "confirmed")
            .values(status="cancelled", cancelled_at=bindparam("cat")),
            [{"rid": ev.reservation_id, "cat": ev.cancelled_at} for ev in stored_cancels],
        )
        ids = [ev.reservation_id for ev in stored_cancels]
        for chunk in _chunks(ids):
            conn.execute(delete(SEATS).where(SEATS.c.reservation_id.in_(chunk)))
            conn.execute(delete(RANKINGS).where(RANKINGS.c.reservation_id.in_(chunk)))

    # 4. Cancellations whose completion has not arrived yet: tombstones.
    early = [ev for rid, ev in cancels.items() if rid not in existing and rid not in completions]
    if early:
        next_rank = _tombstone_ranks(conn, (ev.session_id for ev in early))
        rows = []
        for ev in early:
            rank = next_rank[ev.session_id]
            next_rank[ev.session_id] = rank - 1
            rows.append(
                {
                    "id": ev.reservation_id,
                    "session_id": ev.session_id,
                    "user_id": ev.user_id,
                    "nickname": "",
                    "status": "cancelled",
                    "rank": rank,
                    "completion_ms": 0,
                    "queue_position": None,
                    "seat_ids": list(ev.seat_ids),
                    "seat_count": len(ev.seat_ids),
                    "created_at": ev.cancelled_at,
                    "cancelled_at": ev.cancelled_at,
                }
            )
        conn.execute(RESERVATIONS.insert(), rows)

    # 5. Seats and ranking entries of the reservations this transaction created as live.
    live = [ev for rid, ev in completions.items() if rid not in existing and rid not in cancels]
    if live:
        insert_rows(
            conn,
            SEATS.insert(),
            SEATS,
            [
                {"reservation_id": ev.reservation_id, "seat_id": s, "session_id": ev.session_id}
                for ev in live
                for s in dict.fromkeys(ev.seat_ids)
            ],
        )
        insert_rows(
            conn,
            RANKINGS.insert(),
            RANKINGS,
            [
                {
                    "reservation_id": ev.reservation_id,
                    "session_id": ev.session_id,
                    "rank": ev.rank,
                    "user_id": ev.user_id,
                    "nickname": ev.nickname,
                    "completion_ms": ev.completion_ms,
                    "seat_count": len(ev.seat_ids),
                    "queue_position": ev.queue_position,
                }
                for ev in live
            ],
        )


def apply_batch(engine: Engine, events: Sequence[Event]) -> None:
    """Apply ``events`` in one database transaction (committed on return)."""
    with engine.begin() as conn:
        apply_events(conn, events)
