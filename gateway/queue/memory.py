"""A gateway's memory of the waiting room: each session's snapshot (``snapshot.py``), the
line numbers of the users it has seen, their queue tickets and their collected heartbeats.
From it a status poll is answered without asking Redis (``QueueMemory.peek``); the scripts
and the rest of the queue are ``service.py``'s (``QueueService`` inherits this)."""

from __future__ import annotations

import time

from gateway.queue.schemas import QueueView
from gateway.queue.snapshot import Snapshot
from gateway.queue.views import QueueUnavailable
from shared.tokens import issue_queue_ticket, verify_queue_ticket
from svckit.single_flight import SingleFlight

# A gateway's snapshot of a session is read again after this long even when nothing told it
# the session changed (a change on another gateway is seen by this one's next tick anyway).
SNAPSHOT_MAX_AGE_S = 0.25
# Heartbeats written per script call.
BEAT_CHUNK = 4000
# Line numbers a gateway remembers per session before it starts over (memory bound).
MAX_REMEMBERED = 4_000_000


class QueueMemory:
    """The snapshot, line-number and heartbeat side of :class:`QueueService`."""

    # Set by QueueService.
    secret: str
    bucket_ms: int
    beat_interval_s: float

    def _init_memory(self, snapshot_max_age_s: float) -> None:
        self.snapshot_max_age_s = snapshot_max_age_s
        self._snapshots: dict[int, Snapshot] = {}
        self._stale: set[int] = set()
        self._refreshing: SingleFlight[int, Snapshot] = SingleFlight()
        self._lines: dict[int, dict[str, int]] = {}
        self._beats: dict[int, set[int]] = {}
        self._beats_due = 0.0

    async def _run(
        self, script: str, session_id: int, args: list[object], member: str | None = None
    ) -> object:
        raise NotImplementedError  # QueueService's

    async def status(self, *, session_id: int, user_id: str, beat: bool = True) -> QueueView:
        """Where the user stands, from Redis (QueueService's)."""
        raise NotImplementedError

    # --- the snapshot and heartbeats ---------------------------------------------------------

    def changed(self, session_id: int, version: int) -> None:
        """The session's change counter is ``version``: the snapshot is stale if older."""
        snap = self._snapshots.get(session_id)
        if snap is None or snap.version != version:
            self._stale.add(session_id)

    async def snapshot(self, session_id: int, *, fresh: bool = False) -> Snapshot:
        """The session's serving state: cached, read again when stale, older than the max
        age, or ``fresh`` is asked; concurrent readers share one read."""
        snap = self._snapshots.get(session_id)
        if (
            snap is not None
            and not fresh
            and session_id not in self._stale
            and time.monotonic() - snap.taken_at < self.snapshot_max_age_s
        ):
            return snap
        return await self._refreshing.run(session_id, self._read_snapshot)

    def cached_snapshot(self, session_id: int) -> Snapshot | None:
        """The snapshot held now, however old (None before the first read)."""
        return self._snapshots.get(session_id)

    async def _read_snapshot(self, session_id: int) -> Snapshot:
        self._stale.discard(session_id)  # a change from now on marks it stale again
        previous = self._snapshots.get(session_id)
        args: list[object] = [
            previous.dver if previous else -1,
            previous.known_batch() if previous else 0,
        ]
        raw = await self._run("snapshot", session_id, args)
        snap = Snapshot.parse(raw, previous)  # type: ignore[arg-type]
        if previous is not None and previous.gen not in (0, snap.gen):
            # Redis lost the line (a flush, a restart without persistence; generation 0 is
            # a line not started yet, whose first joiners are remembered here): the line
            # numbers remembered here name places of the old line, maybe other people's in
            # the new one. Forget them: those users are asked of Redis (and told to join
            # again) instead of being answered from memory.
            self._lines.pop(session_id, None)
            self._beats.pop(session_id, None)
        self._snapshots[session_id] = snap
        return snap

    def _remember(self, session_id: int, user_id: str, view: QueueView) -> None:
        lines = self._lines.setdefault(session_id, {})
        if view.state == "none":
            lines.pop(user_id, None)
            return
        if view.state == "pre_queue":
            line = -1
        elif view.seq > 0:
            line = view.seq
        else:
            return
        if len(lines) >= MAX_REMEMBERED:
            lines.clear()
        lines[user_id] = line

    def line_of(self, session_id: int, user_id: str) -> int | None:
        """The user's line number as this gateway knows it (-1: in the pre-queue)."""
        return self._lines.get(session_id, {}).get(user_id)

    def remember_line(self, session_id: int, user_id: str, line: int) -> None:
        """Note a line number the user proved (a valid queue ticket)."""
        lines = self._lines.setdefault(session_id, {})
        if user_id not in lines:
            if len(lines) >= MAX_REMEMBERED:
                lines.clear()
            lines[user_id] = line

    def _from_snapshot(self, snap: Snapshot, line: int) -> QueueView | None:
        """A user's view from the snapshot; None where only Redis can tell (a place gone, an
        admission the snapshot has no batch for, a pre-queue entrant after the draw)."""
        common = (snap.active, snap.alog_len, snap.alog_oldest_ms, snap.redis_now_ms())
        if line < 0:
            if snap.drawn or (snap.closed and snap.base == 0):
                return None
            return QueueView("pre_queue", 0, 0, 0, 0, *common, snap.version)
        # A line number past the snapshot's last joined since it was read (a ticket or a
        # join proves it was given out): its rank counts the drop-outs the snapshot knows,
        # as stale as every other answer from it, instead of a Redis read per new joiner.
        if snap.drops.is_set(line):
            return None
        draw_rank = line if snap.drawn and line <= snap.base else None
        if line <= snap.head:
            batch = snap.batch_of(line)
            if batch is None or not snap.drops.covers(line) or batch.expires_s * 1000 <= common[3]:
                return None
            return QueueView(
                "admitted",
                line,
                0,
                batch.admitted_s,
                batch.expires_s,
                *common,
                snap.version,
                draw_rank,
            )
        if line <= snap.base and not snap.drawn:
            return None
        if snap.sold_out:
            return QueueView("sold_out", line, 0, 0, 0, *common, snap.version, draw_rank)
        return QueueView("waiting", line, snap.rank(line), 0, 0, *common, snap.version, draw_rank)

    def ticket_line(self, session_id: int, user_id: str, ticket: str) -> int | None:
        """The line number of a queue ticket valid for the line as last read here (None:
        forged, another user's or session's, or of a line Redis has since lost)."""
        snap = self._snapshots.get(session_id)
        return verify_queue_ticket(
            ticket,
            secret=self.secret,
            user_id=user_id,
            session_id=session_id,
            gen=snap.gen if snap else 0,
        )

    def ticket_for(self, session_id: int, user_id: str) -> str | None:
        """A queue ticket for the user's remembered line, bound to the line's generation."""
        line = self.line_of(session_id, user_id)
        snap = self._snapshots.get(session_id)
        if line is None or snap is None:
            return None
        return issue_queue_ticket(
            secret=self.secret, user_id=user_id, session_id=session_id, line=line, gen=snap.gen
        )

    async def peek(
        self,
        *,
        session_id: int,
        user_id: str,
        ticket: str | None = None,
        line: int | None = None,
    ) -> QueueView:
        """Where the user stands, from the snapshot where it can tell (a heartbeat for a
        waiter, written with the next batch), else from Redis. ``ticket``: the user's queue
        ticket; ``line``: a line number the caller already verified."""
        if line is not None:
            self.remember_line(session_id, user_id, line)
        elif ticket:
            # Checked against the snapshot it is answered from: its generation must match.
            await self.snapshot(session_id)
            line = self.ticket_line(session_id, user_id, ticket)
            if line is not None:
                self.remember_line(session_id, user_id, line)
        if line is None:
            line = self.line_of(session_id, user_id)
        if line is not None:
            snap = await self.snapshot(session_id)
            view = self._from_snapshot(snap, line)
            if view is not None:
                if view.state in ("waiting", "sold_out"):  # a sold-out waiter keeps its place
                    self._beats.setdefault(session_id, set()).add(line)
                return view
        return await self.status(session_id=session_id, user_id=user_id)

    async def flush_beats(self, *, force: bool = False) -> int:
        """Write the heartbeats collected since the last flush, one call per session (and
        per ``BEAT_CHUNK``), at most every ``beat_interval_s``; returns how many."""
        now = time.monotonic()
        if not force and now < self._beats_due:
            return 0
        self._beats_due = now + self.beat_interval_s
        written = 0
        for session_id in list(self._beats):
            lines = sorted(self._beats.pop(session_id))
            try:
                for start in range(0, len(lines), BEAT_CHUNK):
                    chunk = lines[start : start + BEAT_CHUNK]
                    await self._run("beat", session_id, [self.bucket_ms, *chunk])
                    written += len(chunk)
            except QueueUnavailable:
                self._beats.setdefault(session_id, set()).update(lines)  # next time
                raise
        return written
