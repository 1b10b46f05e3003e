"""Builds the waiting room's parts for one gateway app (called from the lifespan)."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gateway.queue.admission import AdmissionLoop, QueueMetrics, SessionRegistry
from gateway.queue.facts import SessionFactsClient
from gateway.queue.notifier import QueueNotifier
from gateway.queue.schemas import QueuePolicy
from gateway.queue.service import QueueService
from shared.config import CommonSettings
from svckit.redis_client import RedisOptions, make_async_redis, make_pipelined, resolve

# SSE: a session's streams are woken at most this often (changes in between are one
# wake-up, one status per stream); a change after a quiet spell wakes them at once.
SSE_MIN_GAP_S = 0.2

_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, QueueMetrics] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class QueueRuntime:
    """Everything the queue routes and the admission loop share (``app.state.queue``)."""

    service: QueueService
    facts: SessionFactsClient
    registry: SessionRegistry
    notifier: QueueNotifier
    loop: AdmissionLoop
    heartbeat_timeout_s: float
    owns_redis: bool = False


# Connections of the queue's own Redis pool. A blocking pool: a burst of joins waits briefly
# for a connection instead of failing (redis-py's default pool raises past 100).
REDIS_MAX_CONNECTIONS = 256


def make_queue_redis(url: str, *, timeout_s: float) -> Redis:
    """A client as the queue's (tests build several)."""
    return make_async_redis(
        resolve(url, timeout_s=timeout_s, max_connections=REDIS_MAX_CONNECTIONS)
    )


def queue_redis_options(settings: CommonSettings) -> RedisOptions:
    """How the queue talks to Redis: bounded timeouts (a dead Redis is a quick 503)."""
    return resolve(
        settings.require_redis_url(),
        mode=settings.redis_mode,
        timeout_s=settings.redis_socket_timeout_s,
        max_connections=REDIS_MAX_CONNECTIONS,
    )


def build_queue(
    *,
    settings: CommonSettings,
    redis: Redis | None = None,
    api_client: httpx.AsyncClient,
    registry: CollectorRegistry,
) -> QueueRuntime:
    """The queue's service, facts client and admission loop (not yet started). Without
    ``redis`` the queue gets its own client, closed when the admission task ends."""
    owns_redis = redis is None
    options = queue_redis_options(settings)
    if redis is None:
        redis = make_async_redis(options)
    facts = SessionFactsClient(
        client=api_client,
        default_policy=QueuePolicy(
            settings.queue_default_max_active, settings.queue_default_admit_per_second
        ),
    )
    service = QueueService(
        redis=redis,
        secret=settings.secret_key,
        heartbeat_timeout_s=settings.queue_heartbeat_timeout_s,
        admission_ttl_s=settings.admission_ttl_s,
        pipelined=make_pipelined(options),
        facts=facts,
    )
    sessions = SessionRegistry(redis)
    notifier = QueueNotifier(gap_s=SSE_MIN_GAP_S, prepare=service.snapshot)
    metrics = _METRICS.get(registry)
    if metrics is None:  # one set per registry: a lifespan may run more than once per app
        metrics = _METRICS[registry] = QueueMetrics(registry)
    loop = AdmissionLoop(
        service=service,
        facts=facts,
        registry=sessions,
        notifier=notifier,
        metrics=metrics,
    )

    async def joined(session_id: int) -> None:
        await sessions.register(session_id)
        loop.wake(session_id)

    service.on_join = joined
    return QueueRuntime(
        service=service,
        facts=facts,
        registry=sessions,
        notifier=notifier,
        loop=loop,
        heartbeat_timeout_s=settings.queue_heartbeat_timeout_s,
        owns_redis=owns_redis,
    )


def start_queue(runtime: QueueRuntime) -> asyncio.Task[None]:
    """Start the admission loop; the lifespan cancels the task at shutdown."""

    async def run() -> None:
        try:
            await runtime.loop.run()
        finally:
            runtime.notifier.close()
            if runtime.service.pipelined is not None:
                await runtime.service.pipelined.aclose()
            if runtime.owns_redis:
                await runtime.service.redis.aclose()

    return asyncio.create_task(run(), name="queue-admission")
