"""Booking metrics (on top of svckit's per-route request metrics): what the scripts decided."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class BookingMetrics:
    """Outcome counters of holds, confirmations, cancellations and seat-map loads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.holds = Counter(
            "boxoffice_ticket_holds_total",
            "Hold attempts by outcome (ok, conflict, limit, unknown_seats, not_found).",
            ["outcome"],
            registry=registry,
        )
        self.confirmations = Counter(
            "boxoffice_ticket_confirmations_total",
            "Confirm attempts by outcome (ok, replay, key_reused, expired, lost, not_found, "
            "replication_timeout).",
            ["outcome"],
            registry=registry,
        )
        self.cancellations = Counter(
            "boxoffice_ticket_cancellations_total",
            "Cancel attempts by outcome (ok, already, not_found).",
            ["outcome"],
            registry=registry,
        )
        self.seat_map_loads = Counter(
            "boxoffice_ticket_seat_map_loads_total",
            "Seat maps copied from the catalog into Redis by this process.",
            registry=registry,
        )
