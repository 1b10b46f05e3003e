"""Gateway test fixtures: ``gateway`` and ``gateway_factory`` from ``gateway.testing``."""

from gateway.testing import gateway, gateway_factory

__all__ = ["gateway", "gateway_factory"]
