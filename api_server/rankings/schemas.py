"""Ranking payloads (shared public schemas)."""

from __future__ import annotations

from shared.schemas.rankings import RankingEntry, RankingRead

__all__ = ["RankingEntry", "RankingRead"]
