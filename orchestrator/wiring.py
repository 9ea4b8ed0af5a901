"""Build every client and service from settings, once, and close them in order.

The API lifespan and the CLI both use :func:`open_services`; nothing is created at import time.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from orchestrator.auth import KeyRing, Principal, Role
from orchestrator.config import Settings
from orchestrator.errors import InvalidInput
from orchestrator.livekit.tokens import TokenMinter
from orchestrator.pusher.backoff import RestartPolicy
from orchestrator.pusher.lifecycle import Lifecycle
from orchestrator.pusher.reconcile import Reconciler
from orchestrator.pusher.specs import SpecFactory
from orchestrator.pusher.store import PusherStore
from orchestrator.pusher.watcher import EventWatcher
from orchestrator.reconciler.loops import GuardedLoop, LoopGroup
from orchestrator.runtime import DockerRuntime
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from orchestrator.store.stats import StatsReader
from orchestrator.streams import StreamService

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> LeasePolicy:
    return LeasePolicy(
        lease_ms=int(settings.lease_seconds * 1000),
        drain_grace_ms=int(settings.drain_grace_seconds * 1000),
        claim_ms=int(settings.claim_seconds * 1000),
        default_limits=tuple(settings.source_limits.items()),
        default_source_limit=settings.default_source_limit,
        token_ttl_ms=int(settings.token_ttl_seconds * 1000),
        token_refresh_ms=int(settings.token_refresh_seconds * 1000),
    )


def restart_policy(settings: Settings) -> RestartPolicy:
    return RestartPolicy(
        initial_seconds=settings.restart_initial_seconds,
        max_seconds=settings.restart_max_seconds,
        jitter_seconds=min(1.0, settings.restart_initial_seconds),
        stable_seconds=settings.restart_stable_seconds,
    )


def keyring_from(settings: Settings) -> KeyRing:
    ring = KeyRing()
    if settings.admin_api_key is not None:
        admin = Principal("bootstrap-admin", Role.ADMIN, frozenset())
        ring.add_key(settings.admin_api_key.get_secret_value(), admin)
    if settings.api_keys_file is not None:
        ring.load_file(settings.api_keys_file)
    return ring


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Services:
    settings: Settings
    client: Redis
    scripts: Scripts
    store: ReservationStore
    registry: CameraRegistry
    streams: StreamService
    keyring: KeyRing
    loops: LoopGroup
    runtime: DockerRuntime
    pushers: PusherStore
    lifecycle: Lifecycle
    reconciler: Reconciler
    metrics_registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def readiness_probes(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        return {"valkey": self.scripts.ready, "docker": self.runtime.ping}


@asynccontextmanager
async def open_services(
    settings: Settings, *, keyring: KeyRing | None = None, run_loops: bool = True
) -> AsyncIterator[Services]:
    if not settings.valkey_url:
        raise InvalidInput("no Valkey URL: set VALKEY_URL or start the embedded server")
    client = connect(settings.valkey_url, timeout_seconds=settings.valkey_timeout_seconds)
    scripts = Scripts(client)
    policy = policy_from(settings)
    owner = owner_id()
    store = ReservationStore(client, scripts, policy, owner=owner)
    registry = CameraRegistry(client)
    runtime = DockerRuntime(
        settings.docker_host,
        timeout_seconds=settings.docker_timeout_seconds,
        stop_timeout_seconds=settings.pusher_stop_timeout_seconds,
        workers=settings.docker_workers,
    )
    pushers = PusherStore(
        client, scripts, owner=owner, claim_ms=policy.claim_ms, restart=restart_policy(settings)
    )
    lifecycle = Lifecycle(pushers, runtime, registry, SpecFactory(settings))
    reconciler = Reconciler(lifecycle)
    tokens = TokenMinter(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
    streams = StreamService(
        store,
        StatsReader(client, policy),
        tokens,
        on_claim=lifecycle.on_claim if settings.pushers_enabled else None,
    )
    loops = LoopGroup(
        [
            GuardedLoop(
                "expire-leases",
                lambda: store.expire_all(settings.expire_batch_size),
                interval_seconds=settings.sweep_interval_seconds,
            )
        ]
    )
    if settings.pushers_enabled:
        watcher = EventWatcher(reconciler)
        loops.loops += [
            GuardedLoop(
                "pusher-tick", lifecycle.tick, interval_seconds=settings.pusher_tick_seconds
            ),
            GuardedLoop(
                "reconcile",
                reconciler.run_once,
                interval_seconds=settings.reconcile_interval_seconds,
            ),
            GuardedLoop(
                "docker-events",
                lambda: watcher.run(loops.stop_event),
                interval_seconds=settings.reconcile_interval_seconds,
            ),
        ]
    services = Services(
        settings=settings,
        client=client,
        scripts=scripts,
        store=store,
        registry=registry,
        streams=streams,
        keyring=keyring if keyring is not None else keyring_from(settings),
        loops=loops,
        runtime=runtime,
        pushers=pushers,
        lifecycle=lifecycle,
        reconciler=reconciler,
    )
    try:
        if settings.cameras_file is not None:
            count = await registry.seed(settings.cameras_file)
            log.info("cameras seeded", extra={"count": count, "file": str(settings.cameras_file)})
        if run_loops:
            services.loops.start()
        yield services
    finally:
        await services.loops.stop()
        await services.lifecycle.close()
        await services.runtime.close()
        await client.aclose()
