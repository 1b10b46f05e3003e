"""The gateway's Prometheus metrics: svckit's request metrics (labelled by route group) plus
upstream errors and circuit states, all in the app's own registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from svckit.metrics import ServiceMetrics

CIRCUIT_STATES = {"closed": 0, "open": 1, "half_open": 2}


class GatewayMetrics(ServiceMetrics):
    """Request metrics by route group, method and status; upstream health."""

    def __init__(self) -> None:
        super().__init__("gateway")
        self.upstream_errors = Counter(
            "boxoffice_gateway_upstream_errors_total",
            "Upstream failures seen by the gateway, by upstream and kind "
            "(connect, timeout, reset, circuit_open).",
            ["upstream", "kind"],
            registry=self.registry,
        )
        self.circuit_state = Gauge(
            "boxoffice_gateway_circuit_state",
            "Circuit breaker state per upstream: 0 closed, 1 open, 2 half-open.",
            ["upstream"],
            registry=self.registry,
        )
        # Label children cached: ``labels()`` costs a few µs, which matters on the hot path.
        self._children: dict[tuple[str, str, int], tuple[object, object]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request (``route`` is the route group)."""
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (
                self.requests.labels(self.service, route, method, str(status)),
                self.latency.labels(self.service, route, method),
            )
            self._children[key] = pair
        pair[0].inc()  # type: ignore[attr-defined]
        pair[1].observe(seconds)  # type: ignore[attr-defined]

    def set_circuit(self, upstream: str, state: str) -> None:
        """Publish an upstream's circuit state."""
        self.circuit_state.labels(upstream).set(CIRCUIT_STATES[state])
