"""The gateway's front layer: a short pipeline of named stages in front of the FastAPI app
(``pipeline.py`` runs them, one module a stage, sharing a ``RequestContext``)."""

from __future__ import annotations

from gateway.front.pipeline import GatewayFront

__all__ = ["GatewayFront"]
