"""The virtual waiting room: fair (join order), bounded (slots and rate), unskippable.

How it works (all state in Redis under the session's hash tag ``{s:<id>}``, all changes in
Lua scripts, ``scripts/``):

- A waiter is one sorted-set entry: member = 12-char digest of the user id, score = the
  session's join sequence (1, 2, 3, ...). Position = ZRANK + 1: O(log n) per join/status.
- Heartbeats: polling status (or an open SSE stream, which re-reads at least every third of
  the timeout) sets the waiter's bit, indexed by join sequence, in the bitmap of the current
  time bucket; a ring of five bucket bitmaps spans the timeout. A waiter with no bit in the
  ring has been silent longer than the timeout: it is dropped (``expired``) when the
  admission step reaches it at the head of the line, when a bounded sweep passes it, or when
  it asks. ~0.6 bytes per waiter instead of a second sorted set.
- Admission (``tick.lua``, run by every gateway's loop, ``admission.py``): expire admissions
  past their TTL, stop if ``keys.sold_out_flag`` is set, then admit the head of the line
  while fewer than ``max_active`` hold a slot and a GCRA on Redis TIME allows (any window of
  ``w`` s holds at most ``floor(rate * w) + burst`` admissions; burst = one 50 ms period's
  worth, at least 1). Atomic, so any number of instances may race.
- A slot frees on leave, on a ``reservation.completed`` event (consumer group
  ``keys.GATEWAY_QUEUE_GROUP`` on ``keys.events_stream``), or when the admission expires.
  The admission record (and token) outlives a freed slot until it expires (API.md).
- Admission tokens are issued on read from the stored admission time, so every copy has the
  same expiry; ``queue_position`` is the join sequence.
- Sold out is read from the flag on every status call (waiters see ``sold_out`` at once,
  places kept: if a cancellation clears the flag the line moves on).
- Session facts (opening time, policy) come from api_server, cached 5 s per instance.
- Redis errors: 503 problem, never an admission. Several gateway instances must share one
  ``secret_key`` and ``admission_ttl_s``; the heartbeat bucket width is fixed per session by
  the first caller, so differing ``queue_heartbeat_timeout_s`` cannot expire live waiters.
"""
