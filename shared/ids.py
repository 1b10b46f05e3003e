"""The one bound on catalog ids (venue, performance, session, seat) that every service
accepts in a path, a query or a body.

Ids are BIGINT in the database, but the public API's clients are JavaScript (API.md: ids of
catalog objects are integers), and a JSON number above 2**53 does not survive ``JSON.parse``
exactly: 2**53 + 1 reads back as 2**53. So every service accepts 1..``MAX_ID`` and answers a
number above it as an out-of-range number (422, API.md's conventions) before it reaches the
database (where an overflow is a 500) or a Redis key; a number within it that names nothing
is an unknown id (404).
"""

from __future__ import annotations

MAX_ID = 2**53
# Path segments that may hold an id: at most as many digits as MAX_ID (16), so a matched
# segment always parses to an int within int64; the caller still compares it to MAX_ID.
ID_DIGITS = len(str(MAX_ID))
ID_PATTERN = rf"[0-9]{{1,{ID_DIGITS}}}"
