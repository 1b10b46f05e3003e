"""A minimal auto-pipelining Redis client for the gateway's per-request commands: the rate
limiter's one ``EVALSHA`` and the waiting room's scripts (join, status, leave, tick).

Why not redis-py here: measured on this machine, one redis-py 8 asyncio command costs
~280 µs of CPU (pool checkout, retry wrapper, observability hooks, one ``send`` per
command), as much as the whole proxied request; the issue's budget for rate limiting is 10%
of it. This client keeps one connection per process and writes every command issued in one
event-loop iteration with a single ``send`` (what node-redis/ioredis call auto-pipelining);
replies are parsed by hiredis and matched to their futures in order.

While busy (a write carried more than one command), commands are collected for
``window_s`` before they are written; see :meth:`_Protocol.send`.

Failure semantics fit the limiter: one timer per connection bounds every command (no
per-call timer); past the bound everything in flight fails with :class:`RedisTimeout` and the
connection is dropped; a cancelled caller just abandons its future (the reply is dropped, so
the stream stays in sync); the next command reconnects. No retries.
Only plain ``redis://`` URLs (TCP, optional password and DB index); for anything else the
callers use redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
import redis.exceptions
from redis.asyncio.connection import parse_url
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


class RedisTimeout(redis.exceptions.TimeoutError, TimeoutError):
    """No answer within the bound: both redis-py's ``TimeoutError`` (a ``RedisError``, so
    handlers written for redis-py catch it) and the built-in one."""


log = logging.getLogger("boxoffice.redis")


def supports(url: str) -> bool:
    """Whether :class:`PipelinedRedis` can talk to ``url``."""
    return url.startswith(("redis://", "rediss://"))


def slot_of(key: bytes | str) -> int:
    """The cluster slot of ``key`` (its hash tag's, if any)."""
    return int(key_slot(key if isinstance(key, bytes) else key.encode()))


def bulk(*args: bytes | str | int) -> bytes:
    """Arguments as RESP bulk strings (the body of a command)."""
    out = []
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def encode(*args: bytes | str | int) -> bytes:
    """A command in RESP (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + bulk(*args)


class _Protocol(asyncio.Protocol):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
        window_s: float = 0.0,
        decode_responses: bool = False,
    ) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self.window_s = window_s
        self.transport: asyncio.Transport | None = None
        self.pending: deque[asyncio.Future[Any]] = deque()
        # One entry per write still awaiting replies, oldest first: the loop time of the
        # write and the number of replies that completes it (commands written so far). Per
        # write, not per command: the watchdog only needs the oldest.
        self.writes: deque[tuple[float, int]] = deque()
        self.written = 0  # commands written so far
        self.answered = 0  # replies received so far
        self.reader = hiredis.Reader(encoding="utf-8") if decode_responses else hiredis.Reader()
        self.closed = False
        self._out: list[bytes] = []
        self._flush_pending = False
        self._busy = False
        self._singles = 0  # consecutive one-command writes
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        answered = self.answered
        while (reply := self.reader.gets()) is not False:
            if answered == self.written:  # a reply nobody asked for: the stream is broken
                self.abort(RedisConnectionError("unexpected reply from Redis"))
                return
            answered += 1
            fut = pending.popleft()
            if fut.done():  # its caller was cancelled and left
                continue
            if isinstance(reply, hiredis.ReplyError):
                msg = str(reply)
                fut.set_exception(
                    NoScriptError(msg) if msg.startswith("NOSCRIPT") else ResponseError(msg)
                )
            else:
                fut.set_result(reply)
        self.answered = answered
        writes = self.writes
        while writes and writes[0][1] <= answered:
            writes.popleft()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def abort(self, error: Exception) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.writes.clear()
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(error)

    def _check_deadline(self) -> None:
        # One timer per connection instead of one per command: the oldest command in
        # flight is past the bound → Redis is hung or too slow; everything in flight fails
        # and the connection is dropped (its replies could no longer be trusted to come).
        self._watchdog = None
        if not self.writes:
            return
        late = self.loop.time() - self.writes[0][0]
        if late >= self.timeout_s:
            self.abort(RedisTimeout(f"no reply from Redis within {self.timeout_s}s"))
        else:
            self._watchdog = self.loop.call_later(self.timeout_s - late, self._check_deadline)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        # The C future itself: loop.create_future() is one more Python call per command.
        fut: asyncio.Future[Any] = asyncio.Future(loop=self.loop)
        if self.closed or self.transport is None:
            fut.set_exception(RedisConnectionError("not connected to Redis"))
            return fut
        if not self._flush_pending:
            self._flush_pending = True
            if self.window_s and self._busy:
                # Busy (a recent write carried several commands): collect for a moment.
                # Each write wakes the server, ~65 µs of loop time measured with Redis on
                # the same two cores; fewer, larger writes roughly halved the limiter's
                # cost under load (lyft/ratelimit's REDIS_PIPELINE_WINDOW does the same).
                # One request at a time never waits: three one-command writes in a row
                # end the busy state.
                self.loop.call_later(self.window_s, self._flush)
            else:
                # Everything sent in this loop iteration goes out in one write.
                self.loop.call_soon(self._flush)
        self._out.append(command)
        self.pending.append(fut)
        return fut

    def _flush(self) -> None:
        self._flush_pending = False
        out, self._out = self._out, []
        if len(out) > 1:
            self._busy, self._singles = True, 0
        elif self._busy:
            self._singles += 1
            self._busy = self._singles < 3
        if out and not self.closed and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            self.written += len(out)
            self.writes.append((self.loop.time(), self.written))
            if self._watchdog is None:
                self._watchdog = self.loop.call_later(self.timeout_s, self._check_deadline)


def _retrieve(task: asyncio.Task[_Protocol]) -> None:
    # Mark a failed connect as seen: its callers got the error through the shield.
    if not task.cancelled():
        task.exception()


def _abort_result(task: asyncio.Task[_Protocol]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().abort(RedisConnectionError("connection reset after a timeout"))


class PipelinedRedis:
    """One lazily (re)connected, auto-pipelined connection to a Redis server."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        window_s: float = 0.0,
        decode_responses: bool = False,
        address: tuple[str, int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``decode_responses``: strings in replies as ``str`` (UTF-8), as redis-py's
        option of that name; else ``bytes``. ``address`` replaces the URL's host and port
        (a cluster node; credentials still come from the URL)."""
        if not supports(url):
            raise ValueError(f"PipelinedRedis supports redis:// URLs only, not {url!r}")
        kw = parse_url(url)
        host, port = address or (kw.get("host") or "127.0.0.1", kw.get("port") or 6379)
        self._host, self._port = str(host), int(port)
        self._ssl = ssl_context
        if ssl_context is None and url.startswith("rediss://"):
            from svckit.redis_client import ssl_context as make_context

            self._ssl = make_context(url)
        setup = []
        if kw.get("password") is not None:
            user = kw.get("username")
            auth = ("AUTH", user, kw["password"]) if user else ("AUTH", kw["password"])
            setup.append(encode(*auth))
        if int(kw.get("db") or 0):
            setup.append(encode("SELECT", int(kw["db"])))
        self._setup = setup
        self._timeout_s = timeout_s
        self._window_s = window_s
        self._decode = decode_responses
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation
            # that arrives as the awaited call completes.
            async with asyncio.timeout(self._timeout_s):
                _, proto = await loop.create_connection(
                    lambda: _Protocol(loop, self._timeout_s, self._window_s, self._decode),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                )
        except TimeoutError as e:
            raise RedisTimeout(f"no connection to Redis within {self._timeout_s}s") from e
        try:
            for command in self._setup:  # AUTH / SELECT before anything else
                await proto.send(command)
        except BaseException:
            proto.abort(RedisConnectionError("connection set-up failed"))
            raise
        return proto

    @property
    def address(self) -> tuple[str, int]:
        """Host and port of the server."""
        return self._host, self._port

    async def connection(self) -> _Protocol:
        """The live connection (connected first if need be)."""
        return await self._connection()

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(_retrieve)
        try:
            # Shielded: one caller's timeout must not abort the connect the others share.
            proto = await asyncio.shield(self._connecting)
        except (OSError, RedisConnectionError) as e:
            raise RedisConnectionError(f"cannot connect to Redis: {e}") from e
        self._proto = proto
        return proto

    def send(self, command: bytes, slot: int = 0) -> Awaitable[Any]:
        """:meth:`execute` without a coroutine when connected: the reply's future itself
        (the limiter's hot path awaits it directly). ``slot`` is for a cluster client's
        routing; one server ignores it."""
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto.send(command)
        return self.execute(command)

    async def execute(self, command: bytes, slot: int = 0) -> Any:
        """Send one encoded command (:func:`encode`) and return its reply; raises
        :class:`RedisTimeout` past the bound (connecting included), redis-py's
        ``ConnectionError`` / ``ResponseError`` / ``NoScriptError`` otherwise."""
        proto = await self._connection()
        return await proto.send(command)

    def shard(self, slot: int) -> object:
        """The server that answers ``slot``: this one (see :meth:`PipelinedCluster.shard`)."""
        return None

    def reset(self) -> None:
        """Drop the connection (after a timeout: Redis may be hung); in-flight commands
        fail, the next one reconnects."""
        if self._proto is not None:
            self._proto.abort(RedisConnectionError("connection reset after a timeout"))
            self._proto = None
        if self._connecting is not None and not self._connecting.done():
            # Not cancelled (callers share it through a shield and would see the cancel):
            # a connection it still makes is closed as soon as it exists.
            self._connecting.add_done_callback(_abort_result)
        self._connecting = None

    async def aclose(self) -> None:
        """Close the connection."""
        self.reset()


SLOTS = 16384
# Redirections followed per command (a slot moves once per resharding step; more means the
# map is flapping and the caller's failure mode should decide).
MAX_REDIRECTS = 5
# TRYAGAIN / CLUSTERDOWN: the command did not run; a short bounded retry.
TRANSIENT_RETRIES = 3
TRANSIENT_BACKOFF_S = 0.05
_ASKING = encode("ASKING")
_CLUSTER_SLOTS = encode("CLUSTER", "SLOTS")


def _consume(fut: asyncio.Future[Any]) -> None:
    # ASKING's reply is never awaited; mark its error (if any) as seen.
    if not fut.cancelled():
        fut.exception()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class PipelinedCluster:
    """:class:`PipelinedRedis` on a Redis Cluster: a slot map (``CLUSTER SLOTS``) and one
    auto-pipelined connection per master; each command goes to its slot's master.

    ``MOVED``: the slot's new master is remembered at once, the whole map re-read in the
    background, and the command sent again (it did not run). ``ASK`` (a slot half-way
    through a migration): ``ASKING`` and the command, back to back on the target's
    connection. ``TRYAGAIN`` / ``CLUSTERDOWN``: a short bounded retry. A timeout or a lost
    connection is never retried (a script may have run): the error goes to the caller and
    the map is re-read, so the next command finds a promoted replica.

    Why not redis-py's cluster client on this path: BENCHMARKS.md, "Redis Cluster"."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        window_s: float = 0.0,
        decode_responses: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Any node's URL; the others are found from it."""
        if not supports(url):
            raise ValueError(f"PipelinedCluster supports redis:// URLs only, not {url!r}")
        kw = parse_url(url)
        self._seed = (str(kw.get("host") or "127.0.0.1"), int(kw.get("port") or 6379))
        self._url = url
        self._timeout_s = timeout_s
        self._window_s = window_s
        self._decode = decode_responses
        if ssl_context is None and url.startswith("rediss://"):
            from svckit.redis_client import ssl_context as make_context

            ssl_context = make_context(url)
        self._ssl = ssl_context
        self._nodes: dict[tuple[str, int], PipelinedRedis] = {}
        self._slots: list[PipelinedRedis | None] = [None] * SLOTS
        self._refreshing: asyncio.Task[None] | None = None
        self.redirects = 0  # MOVED / ASK followed (tests and metrics read it)

    def node(self, address: tuple[str, int]) -> PipelinedRedis:
        """The connection to the node at ``address`` (made on first use)."""
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = PipelinedRedis(
                self._url,
                timeout_s=self._timeout_s,
                window_s=self._window_s,
                decode_responses=self._decode,
                address=address,
                ssl_context=self._ssl,
            )
        return node

    def send(self, command: bytes, slot: int = 0) -> Awaitable[Any]:
        """:meth:`execute` (the same call shape as :meth:`PipelinedRedis.send`)."""
        return self.execute(command, slot)

    async def execute(self, command: bytes, slot: int = 0) -> Any:
        """Send one encoded command to the master of ``slot`` and return its reply."""
        node = self._slots[slot]
        asking = False
        transient = 0
        for _ in range(MAX_REDIRECTS + TRANSIENT_RETRIES + 1):
            if node is None:
                await self.refresh()
                node = self._slots[slot]
                if node is None:
                    raise RedisConnectionError(f"no cluster node serves slot {slot}")
            try:
                if asking:
                    proto = await node.connection()
                    proto.send(_ASKING).add_done_callback(_consume)
                    return await proto.send(command)
                return await node.send(command)
            except ResponseError as e:
                if isinstance(e, NoScriptError):
                    raise
                msg = str(e)
                kind = msg.split(" ", 1)[0]
                if kind in ("MOVED", "ASK"):
                    self.redirects += 1
                    _, moved_slot, where = msg.split()
                    node = self.node(_address(where))
                    asking = kind == "ASK"
                    if not asking:
                        self._slots[int(moved_slot)] = node
                        self.request_refresh()
                    continue
                if kind in ("TRYAGAIN", "CLUSTERDOWN") and transient < TRANSIENT_RETRIES:
                    transient += 1
                    await asyncio.sleep(TRANSIENT_BACKOFF_S * transient)
                    if kind == "CLUSTERDOWN":
                        await self.refresh()
                        node = self._slots[slot]
                    continue
                raise
            except (RedisConnectionError, redis.exceptions.TimeoutError, OSError):
                # Not re-sent (it may have run); the map is re-read for the next command.
                self.request_refresh()
                raise
        raise RedisConnectionError(f"slot {slot} kept moving; gave up after redirections")

    def shard(self, slot: int) -> object:
        """The master that answers ``slot`` now (its address; None before the map is read):
        callers keep failure state per shard, so one master down is not an outage of all."""
        node = self._slots[slot]
        return None if node is None else node.address

    def request_refresh(self) -> None:
        """Re-read the slot map in the background (one read at a time)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(_consume)

    async def refresh(self) -> None:
        """Re-read the slot map now (joins a read already running)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(_consume)
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        # Known masters first, the seed last; a node that does not answer is skipped.
        candidates = list(dict.fromkeys([*self._nodes, self._seed]))
        last: BaseException | None = None
        for address in candidates:
            try:
                reply = await self.node(address).execute(_CLUSTER_SLOTS)
            except (redis.exceptions.RedisError, OSError) as e:
                last = e
                continue
            slots: list[PipelinedRedis | None] = [None] * SLOTS
            masters = set()
            for start, end, master, *_ in reply:
                host = _text(master[0]) or address[0]
                node = self.node((host, int(master[1])))
                masters.add(node.address)
                slots[int(start) : int(end) + 1] = [node] * (int(end) - int(start) + 1)
            self._slots = slots
            for gone in [a for a in self._nodes if a not in masters and a != self._seed]:
                self._nodes.pop(gone).reset()
            return
        raise RedisConnectionError(f"no cluster node answered CLUSTER SLOTS: {last}")

    def reset(self) -> None:
        """Drop every connection (after a timeout); the next commands reconnect."""
        for node in self._nodes.values():
            node.reset()

    async def aclose(self) -> None:
        """Close every connection."""
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        self.reset()


AnyPipelined = PipelinedRedis | PipelinedCluster


class PipelinedScript:
    """A Lua script called by ``EVALSHA`` on a :class:`PipelinedRedis`, and by ``EVAL``
    (which caches it on the server again) after ``NOSCRIPT``. With ``nkeys`` every call
    passes that many keys (and the count is encoded once); without, any number."""

    def __init__(self, text: str, nkeys: int | None = None) -> None:
        body = text.encode()
        sha = hashlib.sha1(body).hexdigest().encode()
        self.nkeys = nkeys
        # The constant head of each command, encoded once; [numkeys,] KEYS and ARGV follow.
        fixed = () if nkeys is None else (nkeys,)
        self._evalsha = bulk(b"EVALSHA", sha, *fixed)
        self._eval = bulk(b"EVAL", body, *fixed)
        self._head_items = 2 + len(fixed)

    def command(self, args: bytes, nargs: int, *, reload: bool = False) -> bytes:
        """The full command for ``args``: :func:`bulk` of what follows the head (KEYS then
        ARGV, preceded by the key count when it is not fixed), ``nargs`` items in all."""
        head = self._eval if reload else self._evalsha
        return b"*%d\r\n" % (self._head_items + nargs) + head + args

    def as_eval(self, command: bytes) -> bytes:
        """The ``EVAL`` form of an ``EVALSHA`` command made by :meth:`command` (for a
        caller that keeps its commands encoded, after ``NOSCRIPT``)."""
        count = command.index(b"\r\n") + 2  # "*<items>\r\n", the same for both
        if not command.startswith(self._evalsha, count):
            raise ValueError("not an EVALSHA command of this script")
        return command[:count] + self._eval + command[count + len(self._evalsha) :]

    async def __call__(
        self, client: AnyPipelined, keys: Sequence[bytes | str], args: Sequence[object]
    ) -> Any:
        """Run the script; ``NOSCRIPT`` is answered by one ``EVAL``."""
        items: list[bytes | str | int] = []
        if self.nkeys is None:
            items.append(len(keys))
        elif len(keys) != self.nkeys:
            raise ValueError(f"this script takes {self.nkeys} keys, not {len(keys)}")
        items.extend(keys)
        items.extend(a if isinstance(a, bytes | str | int) else str(a) for a in args)
        body = bulk(*items)
        slot = slot_of(keys[0]) if keys else 0
        try:
            return await client.send(self.command(body, len(items)), slot)
        except NoScriptError:
            return await client.send(self.command(body, len(items), reload=True), slot)

    def bind(self, client: AnyPipelined) -> BoundScript:
        """This script on ``client``, called like redis-py's ``AsyncScript``."""
        return BoundScript(self, client)


@dataclass(frozen=True, slots=True)
class BoundScript:
    """A :class:`PipelinedScript` on one client: ``await script(keys=[...], args=[...])``,
    the call shape of redis-py's ``AsyncScript``, so callers need not know which it is."""

    script: PipelinedScript
    client: AnyPipelined

    async def __call__(self, keys: Sequence[bytes | str] = (), args: Sequence[object] = ()) -> Any:
        """Run the script."""
        return await self.script(self.client, keys, args)
