"""The virtual waiting room: fair (line order), bounded (slots and rate), unskippable, and
cheap per waiter.

How it works (all state in Redis under the session's hash tag ``{s:<id>}``, all changes in
Lua scripts, ``scripts/``):

- A waiter is its line number (lno): 1..base are the pre-queue's entrants in draw order,
  base+1.. those who joined after opening, in join order. The member (12-char digest of the
  user id) maps to its lno in one of 32,768 small hashes (``keys.queue_members``), compact
  listpacks: ~25 bytes per waiter with the bitmaps below (BENCHMARKS.md).
- Admission walks the line with a cursor (``head``): every lno <= head was admitted or
  dropped. Drop-outs (left, silent, admission expired) are bits of one bitmap; the number
  still waiting is base + seq - head - (drop-outs above head), kept as a counter. A waiter's
  position is (lno - 1 - head) minus the drop-outs between: exact, counting only those still
  waiting ahead.
- Status polls are answered from the gateway's memory (``snapshot.py``, ``service.py``):
  each gateway reads a session's serving state (cursor, drop bitmap with block counts,
  admission batches) once per change and at least every 250 ms, and knows a waiter's lno
  from its queue ticket or its own joins and polls. Only joins, leaves and final states
  (expired, left) reach Redis; joins arriving together go in one call (``joins.lua``).
- Heartbeats: a poll (or an open SSE stream, which re-reads at least every third of the
  timeout) notes the waiter's lno; each gateway writes its notes in one call per session
  per interval, bit lno in the bitmap of the current time bucket; a ring of five bucket
  bitmaps spans the timeout. A waiter with no bit in the ring has been silent longer than
  the timeout: it is dropped (``expired``) when admission reaches it, when a bounded sweep
  passes it, or when it asks.
- Admission (``tick.lua``, run by every gateway's loop, ``admission.py``): expire admissions
  past their TTL, stop if ``keys.sold_out_flag`` is set, then admit the head of the line
  while fewer than ``max_active`` hold a slot and a GCRA on Redis TIME allows (any window of
  ``w`` s holds at most ``floor(rate * w) + burst`` admissions; burst = one 50 ms period's
  worth, at least 1). Atomic, so any number of instances may race.
- The pre-queue (a session's ``pre_queue_opens_at``): entrants wait unplaced; at
  ``booking_opens_at`` the line closes (later joiners come after them) and one gateway
  places them by HMAC-SHA256(seed, user id) (``shared/draw.py``); the seed's SHA-256 is
  public from the first entrant, the seed after opening (``GET /api/queue/{id}/draw``).
- A slot frees on leave, on a ``reservation.completed`` event (consumer group
  ``keys.GATEWAY_QUEUE_GROUP`` on ``keys.events_stream``), or when the admission expires.
  The admission record (and token) outlives a freed slot until it expires (API.md).
- Admission tokens are issued on read from the admission batch's time, so every copy has the
  same expiry; ``queue_position`` is the line number.
- Sold out: read from the flag by every authoritative status and snapshot (the tick bumps
  the change counter when it flips, so waiters see ``sold_out`` within a tick; batched joins
  read the tick's copy); places are kept: if a cancellation clears the flag the line moves
  on.
- Session facts (opening times, policy) come from api_server, cached 5 s per instance.
- Redis errors: 503 problem, never an admission. Several gateway instances must share one
  ``secret_key`` and ``admission_ttl_s``; the heartbeat bucket width is fixed per session by
  the first caller, so differing ``queue_heartbeat_timeout_s`` cannot expire live waiters.
"""
