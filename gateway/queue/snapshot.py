"""A gateway's in-memory copy of one session's serving state (``snapshot.lua``), from which
it answers status polls without asking Redis: the admission cursor, the drop-outs as a
bitmap with block counts (exact positions: a rank is the places ahead minus the drop-outs
among them), and the admission batches (when each admitted line number was admitted)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

# Set bits are counted per block of this many bytes in advance; a rank counts the rest of
# one block (at most 511 bytes, one int.bit_count).
BLOCK_BYTES = 512


def _int(value: object) -> int:
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)  # type: ignore[call-overload,no-any-return]


@dataclass(frozen=True, slots=True)
class DropIndex:
    """The drop bitmap from bit ``8 * first_byte`` on (Redis bit order: MSB first)."""

    first_byte: int = 0
    data: bytes = b""
    cum: tuple[int, ...] = (0,)

    @classmethod
    def build(cls, first_byte: int, data: bytes) -> DropIndex:
        """Index ``data`` (the bitmap's bytes from ``first_byte``)."""
        cum = [0]
        for start in range(0, len(data), BLOCK_BYTES):
            block = data[start : start + BLOCK_BYTES]
            cum.append(cum[-1] + int.from_bytes(block, "big").bit_count())
        return cls(first_byte, data, tuple(cum))

    def prefix(self, bit: int) -> int:
        """Set bits at offsets from ``8 * first_byte`` up to ``bit`` inclusive."""
        j = bit - 8 * self.first_byte
        if j < 0:
            return 0
        byte = j >> 3
        if byte >= len(self.data):
            return self.cum[-1]
        block = byte // BLOCK_BYTES
        n = self.cum[block]
        if byte > block * BLOCK_BYTES:
            n += int.from_bytes(self.data[block * BLOCK_BYTES : byte], "big").bit_count()
        return n + (self.data[byte] >> (7 - (j & 7))).bit_count()

    def count(self, lo: int, hi: int) -> int:
        """Set bits at offsets ``lo..hi`` (both >= ``8 * first_byte``)."""
        return 0 if hi < lo else self.prefix(hi) - self.prefix(lo - 1)

    def covers(self, bit: int) -> bool:
        """Whether ``bit`` is at or after the first fetched byte."""
        return bit >= 8 * self.first_byte

    def is_set(self, bit: int) -> bool:
        """Whether ``bit`` is set (False beyond the fetched bytes: nobody dropped there)."""
        j = bit - 8 * self.first_byte
        byte = j >> 3
        return 0 <= j and byte < len(self.data) and bool(self.data[byte] >> (7 - (j & 7)) & 1)


@dataclass(frozen=True, slots=True)
class Batch:
    """Line numbers ``first..last`` (those not dropped) admitted at ``admitted_s``."""

    first: int
    last: int
    admitted_s: int
    expires_s: int

    @classmethod
    def parse(cls, raw: object) -> Batch:
        """From ``"first:last:admitted_s:expires_s"``."""
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        a, b, c, d = (int(x) for x in text.split(":"))
        return cls(a, b, c, d)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One session's serving state as one atomic read saw it."""

    version: int
    head: int  # every line number <= head is admitted or dropped
    base: int  # the pre-queue's size (its entrants hold 1..base after the draw)
    drawn: bool
    last: int  # the highest line number given out
    waiting: int
    active: int
    sold_out: bool
    alog_len: int
    alog_oldest_ms: int
    now_ms: int  # Redis time when read
    bucket_ms: int
    dver: int  # drop-bitmap version
    closed: bool
    drops: DropIndex
    gen: int  # the line's generation: another one means Redis lost the line (snapshot.lua)
    batches: tuple[Batch, ...]
    lasts: tuple[int, ...]  # the ``last`` of each batch (ascending)
    taken_at: float = field(default_factory=time.monotonic)

    def batch_of(self, line: int) -> Batch | None:
        """The admission batch holding ``line``, if still known."""
        i = bisect.bisect_left(self.lasts, line)
        if i < len(self.batches) and self.batches[i].first <= line:
            return self.batches[i]
        return None

    def redis_now_ms(self) -> int:
        """Redis time now, estimated from the read's time."""
        return self.now_ms + int((time.monotonic() - self.taken_at) * 1000)

    def rank(self, line: int) -> int:
        """0-based rank of a waiting line number: those still waiting ahead of it."""
        ahead = line - 1 - self.head
        return ahead - self.drops.count(self.head + 1, line - 1) if ahead > 0 else 0

    def known_batch(self) -> int:
        """The highest batch ``last`` held (the next read asks only for newer ones)."""
        return self.batches[-1].last if self.batches else 0

    @classmethod
    def parse(cls, raw: Sequence[object], previous: Snapshot | None) -> Snapshot:
        """From ``snapshot.lua``'s reply; what it did not resend is taken from ``previous``."""
        n = [_int(v) for v in raw[:15]]
        bits = raw[15]
        now_ms = n[10]
        if isinstance(bits, bytes):
            drops = DropIndex.build(n[14], bits)
        elif previous is not None:
            drops = previous.drops
        else:
            drops = DropIndex()
        fresh = [Batch.parse(b) for b in raw[17:]]
        kept = [b for b in (previous.batches if previous else ()) if b.expires_s * 1000 > now_ms]
        batches = tuple(kept + fresh)
        return cls(
            version=n[0],
            head=n[1],
            base=n[2],
            drawn=n[3] > 0,
            last=n[2] + n[4],
            waiting=n[5],
            active=n[6],
            sold_out=n[7] == 1,
            alog_len=n[8],
            alog_oldest_ms=n[9],
            now_ms=now_ms,
            bucket_ms=n[11],
            dver=n[12],
            closed=n[13] == 1,
            drops=drops,
            gen=_int(raw[16]),
            batches=batches,
            lasts=tuple(b.last for b in batches),
        )
