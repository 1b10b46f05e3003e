"""The pre-queue's verifiable draw (API.md "Queue admission"): the order anyone holding the
seed and the list of entrants can reproduce, and the commitment published before anyone
joins. Pure functions: the gateway draws with them, tests and auditors check with them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def commitment(seed: bytes) -> str:
    """The public commitment to a seed: its SHA-256, hex."""
    return hashlib.sha256(seed).hexdigest()


def draw_key(seed: bytes, user_id: str) -> bytes:
    """A user's sort key in the draw: HMAC-SHA256(seed, user_id)."""
    return hmac.new(seed, user_id.encode(), hashlib.sha256).digest()


def draw_order(seed: bytes, user_ids: Iterable[str]) -> list[str]:
    """The entrants in draw order (sort keys ascending)."""
    return sorted(user_ids, key=lambda u: draw_key(seed, u))
