"""The local cluster and the port picker that the suite's servers start on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxoffice import local_cluster
from boxoffice.local_cluster import LocalCluster
from boxoffice.ports import free_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert max(ports) < _ephemeral_low()
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # still free: nothing here listens on it


def test_a_port_taken_before_the_server_binds_it_gets_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race CI once lost: the chosen port was taken between the check and the bind; the
    node exited at once and the whole cluster failed to start."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = int(squatter.getsockname()[1])
    choices: Iterator[int] = iter([taken])
    real = local_cluster._node_port
    monkeypatch.setattr(local_cluster, "_node_port", lambda: next(choices, None) or real())
    cluster = LocalCluster(masters=3, replicas=0)
    try:
        cluster.start()
        ports = [n.port for n in cluster.nodes]
        assert taken not in ports
        assert len(ports) == 3
        assert all(n.alive and n.answers() for n in cluster.nodes)
    finally:
        cluster.stop()
        squatter.close()
