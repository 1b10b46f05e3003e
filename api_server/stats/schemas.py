"""Statistics payloads (shared public schemas)."""

from __future__ import annotations

from shared.schemas.rankings import SessionStats

__all__ = ["SessionStats"]
