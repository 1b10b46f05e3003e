"""The one place every process gets its Redis clients from.

``BOXOFFICE_REDIS_URL`` names any node: ``redis://`` / ``rediss://`` (TLS) for a standalone
server or any node of a cluster (the mode is asked of the server, ``INFO cluster``), or
``redis+sentinel://host:port[,host:port...]/service_name[/db]`` for a Sentinel-watched
master. ``BOXOFFICE_REDIS_MODE=standalone|cluster|sentinel`` forces the mode.

One retry policy, for every client built here:

- nothing is re-sent after a timeout or a lost connection: a script may have run, and
  running it twice could sell a seat twice; the caller's failure mode decides (each caller
  says whether it fails open or closed);
- ``MOVED`` and ``ASK`` are followed (the command did not run);
- ``TRYAGAIN`` and ``CLUSTERDOWN`` (the command did not run either) get a short bounded
  retry, then the caller's failure mode.

Callers catch :data:`REDIS_ERRORS`: redis-py's cluster client raises
``RedisClusterException`` (for instance "no node serves this slot" while a cluster
re-forms), which is not a ``RedisError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ConstantBackoff, NoBackoff
from redis.exceptions import (
    ClusterDownError,
    MaxConnectionsError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry

from svckit.redis_pipeline import AnyPipelined, PipelinedCluster, PipelinedRedis, supports

log = logging.getLogger("boxoffice.redis")

RedisMode = Literal["standalone", "cluster", "sentinel"]

# What a Redis call can raise when Redis cannot answer (callers decide open or closed).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)

# The errors after which a command surely did not run, retried briefly: a cluster electing a
# new master (CLUSTERDOWN), a slot whose keys are moving (TRYAGAIN), a stale slot map.
CLUSTER_TRANSIENT: tuple[type[Exception], ...] = (
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
TRANSIENT_RETRIES = 3
TRANSIENT_BACKOFF_S = 0.1
SENTINEL_SCHEME = "redis+sentinel"


class BoxofficeRedisCluster(aiocluster.RedisCluster):
    """redis-py's asyncio cluster client retrying only what surely did not run.

    redis-py retries a command after ``ConnectionError`` / ``TimeoutError`` too (re-reading
    the slot map in between); a script whose reply was lost may have run, so those are not
    retried here. The slot map is still refreshed after such an error (redis-py asks for
    it), so the caller's next command goes to the promoted replica.

    Its per-node pools raise ``MaxConnectionsError`` at once when full (there is no
    blocking pool for a cluster), which a burst would turn into 503s: commands and
    pipelines wait for one of ``max_connections`` turns instead, as the standalone client's
    blocking pool does, for at most ``pool_timeout_s``."""

    ERRORS_ALLOW_RETRY = (ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]

    def __init__(
        self, *args: Any, pool_timeout_s: float = 1.0, max_connections: int = 32, **kwargs: Any
    ) -> None:
        """``pool_timeout_s``: the longest wait for a turn."""
        super().__init__(*args, max_connections=max_connections, **kwargs)  # type: ignore[misc]
        self._turns = asyncio.Semaphore(max_connections)
        self._turn_timeout_s = pool_timeout_s

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One of the client's ``max_connections`` turns (waits for one)."""
        try:
            async with asyncio.timeout(self._turn_timeout_s):
                await self._turns.acquire()
        except TimeoutError as e:
            raise MaxConnectionsError("no free Redis connection in time") from e
        try:
            yield
        finally:
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py's, in a turn."""
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def node_failed(self, node: aiocluster.ClusterNode) -> None:
        """A connection to ``node`` failed on a path of our own (a raw node pipeline):
        re-read the slot map before the next command, as redis-py does after a failure in
        its own command path. Without it, the map kept naming a killed master until some
        other command on this client failed too."""
        # redis-py's own request (it merges concurrent requests and tries ``node`` last);
        # the bare flag on versions without it.
        request = getattr(self, "_request_refresh", None)
        if request is not None:
            request(last_failed_node_name=node.name)
        else:
            self._initialize = True

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        """redis-py's cluster pipeline, executed in a turn."""
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _TurnPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py does


class _TurnPipeline(aiocluster.ClusterPipeline):
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        client = cast(BoxofficeRedisCluster, self.cluster_client)
        async with client.turn():
            return await super().execute(*args, **kwargs)


class BoxofficeSyncRedisCluster(redis.cluster.RedisCluster):
    """:class:`BoxofficeRedisCluster` for synchronous callers (the worker)."""

    ERRORS_ALLOW_RETRY = (ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]


class SentinelMaster(aioredis.Redis):
    """The master's client from a Sentinel; closing it closes the Sentinel connections
    too (redis-py leaves them open)."""

    sentinel: Any = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the master's pool and the Sentinel clients."""
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()


class SyncSentinelMaster(redis.Redis):
    """:class:`SentinelMaster` for synchronous callers."""

    sentinel: Any = None

    def close(self) -> None:
        """Close the master's pool and the Sentinel clients."""
        super().close()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                client.close()


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: list[tuple[str, int]]
    service_name: str
    db: int
    password: str | None
    username: str | None

    def sentinel_kwargs(self, timeout_s: float) -> dict[str, Any]:
        """The arguments of ``Sentinel`` (the Sentinels' own password, if any)."""
        return {
            "sentinel_kwargs": {"password": self.password} if self.password else None,
            "socket_timeout": timeout_s,
        }

    def master_kwargs(self) -> dict[str, Any]:
        """The arguments of ``Sentinel.master_for`` naming the master."""
        return {
            "service_name": self.service_name,
            "db": self.db,
            "password": self.password,
            "username": self.username,
        }


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {url!r}")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, _, secret = auth.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) or None)
    sentinels = []
    for item in netloc.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "26379"
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("a Sentinel URL names its service: redis+sentinel://h:p/service[/db]")
    db = int(path[1]) if len(path) == 2 else 0
    return SentinelTarget(sentinels, path[0], db, password, username)


# Modes a server told us, per URL: a process asks once (its clients are built one by one).
# A failed probe is not remembered, so a Redis that was down at start-up is asked again.
_detected: dict[str, RedisMode] = {}


def detect_mode(url: str, *, timeout_s: float, forced: RedisMode | None = None) -> RedisMode:
    """The mode to use for ``url``: ``forced`` if given, sentinel for a Sentinel URL, else
    asked of the server (``INFO cluster``). A server that cannot be asked is taken as
    standalone (start-up must not fail because Redis is down; force the mode where that
    guess would be wrong)."""
    if forced:
        return forced
    if url.startswith(SENTINEL_SCHEME + "://"):
        return "sentinel"
    known = _detected.get(url)
    if known is not None:
        return known
    probe = redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )
    try:
        enabled = probe.info("cluster").get("cluster_enabled")
    except (RedisError, OSError) as e:
        log.warning("redis: cannot ask %s for its mode (%s); assuming standalone", _safe(url), e)
        return "standalone"
    finally:
        probe.close()
    mode: RedisMode = "cluster" if str(enabled) == "1" else "standalone"
    _detected[url] = mode
    return mode


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


@dataclass(frozen=True)
class RedisOptions:
    """How one client talks to Redis (timeouts, pool size, reply decoding)."""

    url: str
    mode: RedisMode
    timeout_s: float = 1.0
    connect_timeout_s: float | None = None
    max_connections: int = 32
    pool_timeout_s: float | None = None
    decode_responses: bool = False

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS."""
        return self.url.startswith("rediss://")


def resolve(
    url: str,
    *,
    mode: RedisMode | None = None,
    timeout_s: float = 1.0,
    connect_timeout_s: float | None = None,
    max_connections: int = 32,
    pool_timeout_s: float | None = None,
    decode_responses: bool = False,
) -> RedisOptions:
    """Options for the clients of one process, the mode detected once (:func:`detect_mode`)."""
    return RedisOptions(
        url=url,
        mode=detect_mode(url, timeout_s=connect_timeout_s or timeout_s, forced=mode),
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s,
        max_connections=max_connections,
        pool_timeout_s=pool_timeout_s,
        decode_responses=decode_responses,
    )


def _common(options: RedisOptions, **overrides: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "socket_timeout": options.timeout_s,
        "socket_connect_timeout": options.connect_timeout_s or options.timeout_s,
        "decode_responses": options.decode_responses,
    }
    kw.update(overrides)
    return kw


def make_async_redis(options: RedisOptions, **overrides: Any) -> aioredis.Redis:
    """An asyncio client (typed as ``Redis``; on a cluster a :class:`BoxofficeRedisCluster`,
    which answers the same commands). ``overrides`` replace options for this client only
    (``decode_responses``, ``max_connections``)."""
    kw = _common(options, **{k: v for k, v in overrides.items() if k != "max_connections"})
    max_connections = overrides.get("max_connections", options.max_connections)
    if options.mode == "cluster":
        client = BoxofficeRedisCluster.from_url(
            options.url,
            retry=AsyncRetry(ConstantBackoff(TRANSIENT_BACKOFF_S), TRANSIENT_RETRIES),
            max_connections=max_connections,
            pool_timeout_s=options.pool_timeout_s or options.timeout_s,
            **kw,
        )
        return client  # type: ignore[return-value]  # the same command API
    if options.mode == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        master: SentinelMaster = _sentinel_master(
            options, Sentinel, SentinelMaster, AsyncRetry(NoBackoff(), 0), kw
        )
        return master
    pool = aioredis.BlockingConnectionPool.from_url(
        options.url,
        max_connections=max_connections,
        timeout=options.pool_timeout_s or options.timeout_s,
        retry=AsyncRetry(NoBackoff(), 0),
        **kw,
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it


def _sentinel_master(
    options: RedisOptions, sentinel_class: Any, master_class: Any, retry: Any, kw: dict[str, Any]
) -> Any:
    # The master's client from a Sentinel manager, which the client then closes.
    target = parse_sentinel_url(options.url)
    sentinel = sentinel_class(target.sentinels, **target.sentinel_kwargs(options.timeout_s))
    master = sentinel.master_for(
        **target.master_kwargs(), redis_class=master_class, retry=retry, **kw
    )
    master.sentinel = sentinel
    return master


def make_sync_redis(options: RedisOptions, **overrides: Any) -> redis.Redis:
    """The synchronous twin of :func:`make_async_redis` (the worker)."""
    kw = _common(options, **overrides)
    if options.mode == "cluster":
        return BoxofficeSyncRedisCluster.from_url(  # type: ignore[return-value]
            options.url,
            retry=Retry(ConstantBackoff(TRANSIENT_BACKOFF_S), TRANSIENT_RETRIES),
            **kw,
        )
    if options.mode == "sentinel":
        from redis.sentinel import Sentinel as SyncSentinel

        sync_master: SyncSentinelMaster = _sentinel_master(
            options, SyncSentinel, SyncSentinelMaster, Retry(NoBackoff(), 0), kw
        )
        return sync_master
    return redis.Redis.from_url(options.url, retry=Retry(NoBackoff(), 0), **kw)


def ssl_context(url: str) -> ssl.SSLContext | None:
    """The TLS context of a ``rediss://`` URL, else None. Reads redis-py's query options:
    ``ssl_ca_certs=<file>`` (the CA to trust) and ``ssl_cert_reqs=none`` (no verification)."""
    if not url.startswith("rediss://"):
        return None
    query = dict(parse_qsl(urlsplit(url).query))
    ctx = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    if query.get("ssl_cert_reqs", "").lower() == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_pipelined(
    options: RedisOptions, *, window_s: float = 0.0, decode_responses: bool | None = None
) -> AnyPipelined | None:
    """The auto-pipelined client for hot paths (``svckit/redis_pipeline.py``): one server
    or a cluster; None under Sentinel (callers then use :func:`make_async_redis`)."""
    decode = options.decode_responses if decode_responses is None else decode_responses
    if options.mode == "sentinel" or not supports(options.url):
        return None
    cls = PipelinedCluster if options.mode == "cluster" else PipelinedRedis
    return cls(options.url, timeout_s=options.timeout_s, window_s=window_s, decode_responses=decode)


class RedisHealth:
    """Whether this process's Redis work is failing, for ``/readyz``: callers report each
    failure; readiness fails until ``window_s`` has passed since the last one. A PING is
    not enough (one cluster master down fails a third of the commands while any other
    node still answers PING)."""

    def __init__(self, window_s: float = 5.0) -> None:
        """``window_s``: how long one failure keeps the process unready."""
        self.window_s = window_s
        self._last_failure = float("-inf")
        self._last_error = ""

    def failed(self, exc: BaseException) -> None:
        """Record a failed Redis call."""
        self._last_failure = time.monotonic()
        self._last_error = f"{type(exc).__name__}: {exc}"

    def check(self) -> None:
        """Raise while the last failure is recent."""
        if time.monotonic() - self._last_failure < self.window_s:
            raise RuntimeError(f"Redis work failing: {self._last_error}")


async def ping_all(client: aioredis.Redis) -> None:
    """PING the server, or every master of a cluster (each serves its own slots)."""
    if isinstance(client, aiocluster.RedisCluster):
        await client.ping(target_nodes=aiocluster.RedisCluster.PRIMARIES)
    else:
        await client.ping()
