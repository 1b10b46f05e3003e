"""Hold and reservation ids. They carry the session id, because a script must know the
session's hash tag from the id alone (``DELETE /holds/{id}``, ``GET /reservations/{id}``).

Format: ``h_<session_id>_<32 hex>`` and ``r_<session_id>_<32 hex>`` (at most 53 chars).
Anything else is not an id of ours: the caller answers 404, never 500.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from shared.ids import ID_DIGITS, MAX_ID

# The session part is a catalog id (shared/ids.py): at most ID_DIGITS digits, then in range.
_ID = re.compile(rf"^([hr])_([1-9][0-9]{{0,{ID_DIGITS - 1}}})_([0-9a-f]{{32}})$")


def new_hold_id(session_id: int) -> str:
    """A fresh hold id in ``session_id``."""
    return f"h_{session_id}_{secrets.token_hex(16)}"


def reservation_id_for_hold(hold_id: str) -> str:
    """The one reservation id a hold can become (``hold_id`` must be well-formed).

    Derived, not drawn: a confirm whose answer was lost in a failover, and which is then
    confirmed afresh from the same hold, gets the same id, so the worker stores it once
    however many times Redis hands it out."""
    session_id = hold_session(hold_id)
    if session_id is None:
        raise ValueError(f"not a hold id: {hold_id!r}")
    digest = hashlib.sha256(b"reservation:" + hold_id.encode()).hexdigest()[:32]
    return f"r_{session_id}_{digest}"


def _session_of(kind: str, value: str) -> int | None:
    m = _ID.fullmatch(value)
    if m is None or m.group(1) != kind:
        return None
    session_id = int(m.group(2))
    return session_id if session_id <= MAX_ID else None


def hold_session(hold_id: str) -> int | None:
    """The session of a well-formed hold id, else ``None``."""
    return _session_of("h", hold_id)


def reservation_session(reservation_id: str) -> int | None:
    """The session of a well-formed reservation id, else ``None``."""
    return _session_of("r", reservation_id)
