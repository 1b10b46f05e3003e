"""Where each service lives (import strings only) and its default port."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    """A service the supervisor can start."""

    name: str
    factory: str
    port: int

    @property
    def module(self) -> str:
        """The module that holds the factory."""
        return self.factory.split(":", 1)[0]

    def exists(self) -> bool:
        """Whether this checkout has the service yet."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False


SERVICES: dict[str, ServiceSpec] = {
    "gateway": ServiceSpec("gateway", "gateway.app:create_app", 8000),
    "api": ServiceSpec("api", "api_server.app:create_app", 8001),
    "ticket": ServiceSpec("ticket", "ticket_server.app:create_app", 8002),
}
# The worker's entry point: a module with ``main(argv: list[str] | None) -> int``.
WORKER_MODULE = "ticket_server.worker.main"
