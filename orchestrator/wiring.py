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
from dataclasses import dataclass
from functools import partial

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from orchestrator.auth import KeyRing, Principal, Role
from orchestrator.camera_admin import CameraAdmin
from orchestrator.config import Settings
from orchestrator.domain.backoff import RestartPolicy
from orchestrator.domain.containers import parse_memory
from orchestrator.domain.runtime import PusherRuntime
from orchestrator.errors import InvalidInput
from orchestrator.livekit.gateway import LiveKitGateway
from orchestrator.livekit.ingress import IngressManager, RoomPolicy
from orchestrator.livekit.ingress_status import IngressStatus
from orchestrator.livekit.tokens import TokenMinter
from orchestrator.livekit.webhooks import WebhookEffects, WebhookVerifier
from orchestrator.metrics import ServiceMetrics
from orchestrator.pusher.codec_probe import CodecProbe
from orchestrator.pusher.lifecycle import Lifecycle
from orchestrator.pusher.spec_factory import SpecFactory, StaticTarget, TargetSource
from orchestrator.reconcile.container_events import EventWatcher
from orchestrator.reconcile.containers import Reconciler
from orchestrator.reconcile.livekit import PresenceSync
from orchestrator.reconcile.loops import GuardedLoop, LoopGroup
from orchestrator.runtime import DockerRuntime
from orchestrator.runtime.swarm_engine import SwarmOptions
from orchestrator.runtime.swarm_runtime import SwarmRuntime
from orchestrator.state_metrics import StateGauges
from orchestrator.stats_snapshot import StatsSnapshots
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.changes import ChangedKeys
from orchestrator.store.client import connect
from orchestrator.store.ingresses import IngressRecords
from orchestrator.store.presence import PresencePolicy, PresenceStore
from orchestrator.store.pushers import PusherStore
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from orchestrator.store.stats import CAMERA_PREFIXES, StatsReader
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
    stats: StatsSnapshots  # what /stream/stats and the state gauges read
    keyring: KeyRing
    loops: LoopGroup
    runtime: PusherRuntime
    pushers: PusherStore
    lifecycle: Lifecycle
    reconciler: Reconciler
    presence: PresenceStore
    cameras: CameraAdmin
    webhooks: WebhookVerifier
    webhook_effects: WebhookEffects
    metrics: ServiceMetrics
    metrics_registry: CollectorRegistry
    state_gauges: StateGauges
    livekit: LiveKitGateway | None = None
    presence_sync: PresenceSync | None = None

    def readiness_probes(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        """Probes whose failure makes the service unready (503); the runtime's is named after
        it (``docker``)."""
        return {"valkey": self.scripts.ready, self.runtime.kind: self.runtime.ping}

    def degraded_probes(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        """Probes whose failure degrades the service but leaves it serving (reserve works
        while LiveKit is down: tokens are minted locally)."""
        return {"livekit": self.livekit.ping} if self.livekit is not None else {}


def runtime_from(settings: Settings) -> PusherRuntime:
    """The pusher runtime ``CCTV_RUNTIME`` names (``docker``, ``swarm``), for
    ``CCTV_INSTANCE``."""
    if settings.runtime == "swarm":
        return SwarmRuntime(
            settings.docker_host,
            timeout_seconds=settings.docker_timeout_seconds,
            stop_timeout_seconds=settings.pusher_stop_timeout_seconds,
            workers=settings.docker_workers,
            instance=settings.instance,
            poll_seconds=settings.swarm_poll_seconds,
            options=SwarmOptions(
                constraints=settings.swarm_constraints,
                preferences=settings.swarm_preferences,
                cpus_reserved=settings.swarm_reserve_cpus,
                memory_reserved_bytes=parse_memory(settings.swarm_reserve_memory),
            ),
        )
    if settings.runtime == "docker":
        return DockerRuntime(
            settings.docker_host,
            timeout_seconds=settings.docker_timeout_seconds,
            stop_timeout_seconds=settings.pusher_stop_timeout_seconds,
            workers=settings.docker_workers,
            instance=settings.instance,
        )
    raise InvalidInput(f"unknown runtime {settings.runtime!r}", field="runtime")


def whip_targets(
    settings: Settings, livekit: LiveKitGateway | None, records: IngressRecords
) -> TargetSource:
    """A fixed WHIP endpoint when one is configured, else each camera's LiveKit ingress."""
    if settings.whip_url or livekit is None:
        return StaticTarget(settings)
    rooms = RoomPolicy(settings.room_empty_timeout_seconds, settings.room_departure_timeout_seconds)
    return IngressManager(livekit, records, rooms)


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    keyring: KeyRing | None = None,
    run_loops: bool = True,
    seed_cameras: bool = True,
) -> AsyncIterator[Services]:
    """``run_loops`` False: no background loops (the CLI); ``seed_cameras`` False: leave the
    registry as it is even when ``CCTV_CAMERAS_FILE`` is set."""
    if not settings.valkey_url:
        raise InvalidInput("no Valkey URL: set VALKEY_URL or start the embedded server")
    client = connect(settings.valkey_url, timeout_seconds=settings.valkey_timeout_seconds)
    scripts = Scripts(client)
    policy = policy_from(settings)
    owner = owner_id()
    store = ReservationStore(client, scripts, policy, owner=owner)
    registry = CameraRegistry(client)
    runtime = runtime_from(settings)
    pushers = PusherStore(
        client, scripts, owner=owner, claim_ms=policy.claim_ms, restart=restart_policy(settings)
    )
    metrics_registry = CollectorRegistry()
    metrics = ServiceMetrics(metrics_registry, runtime=runtime.kind)
    presence = PresenceStore(
        client,
        scripts,
        PresencePolicy(policy.lease_ms, int(settings.reconnect_grace_seconds * 1000)),
    )
    livekit: LiveKitGateway | None = None
    if settings.livekit_enabled:
        livekit = LiveKitGateway(
            settings.livekit_url,
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
            timeout_seconds=settings.livekit_timeout_seconds,
            attempts=settings.livekit_attempts,
            registry=metrics_registry,
        )
    ingress_records = IngressRecords(client, scripts)
    targets = whip_targets(settings, livekit, ingress_records)
    codec_probe = CodecProbe(pushers, runtime.logs)
    lifecycle = Lifecycle(
        pushers,
        runtime,
        registry,
        SpecFactory(settings),
        targets,
        metrics,
        on_running=codec_probe.watch,
    )
    reconciler = Reconciler(lifecycle)
    tokens = TokenMinter(
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        (settings.room_empty_timeout_seconds, settings.room_departure_timeout_seconds),
    )
    changes = ChangedKeys(
        client, CAMERA_PREFIXES, timeout_seconds=max(settings.valkey_timeout_seconds, 1.0)
    )
    metrics.key_tracking.set_function(lambda: float(changes.up))
    stats_reader = StatsReader(client, scripts, policy, changes=changes)
    stats = StatsSnapshots(stats_reader, settings.stats_max_age_seconds, on_read=metrics.stats_read)
    streams = StreamService(
        store,
        stats_reader,
        tokens,
        on_claim=lifecycle.on_claim if settings.pushers_enabled else None,
        on_drain=lifecycle.on_drain if settings.pushers_enabled else None,
        metrics=metrics,
    )

    async def expire() -> None:
        report = await store.expire_all(settings.expire_batch_size)
        metrics.leases_expired.inc(report.expired)

    loop = partial(GuardedLoop, on_error=metrics.dependency_error, on_pass=metrics.loop_pass)
    loops = LoopGroup(
        [loop("expire-leases", expire, interval_seconds=settings.sweep_interval_seconds)]
    )
    if settings.pushers_enabled:
        watcher = EventWatcher(reconciler)
        loops.loops += [
            loop("pusher-tick", lifecycle.tick, interval_seconds=settings.pusher_tick_seconds),
            loop(
                "reconcile",
                reconciler.run_once,
                interval_seconds=settings.reconcile_interval_seconds,
            ),
            loop(
                f"{runtime.kind}-events",
                lambda: watcher.run(loops.stop_event),
                interval_seconds=settings.reconcile_interval_seconds,
            ),
        ]
    ingresses = IngressStatus(
        ingress_records, on_error=lifecycle.ingress_failed if settings.pushers_enabled else None
    )
    presence_sync: PresenceSync | None = None
    if livekit is not None:
        presence_sync = PresenceSync(
            livekit,
            presence,
            registry,
            ingresses,
            lists_per_second=settings.livekit_list_rate_per_second,
            metrics=metrics,
        )
        loops.loops.append(
            loop(
                "livekit-sync",
                presence_sync.run_once,
                interval_seconds=settings.livekit_sync_interval_seconds,
            )
        )
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
        presence=presence,
        cameras=CameraAdmin(registry, store, lifecycle if settings.pushers_enabled else None),
        webhooks=WebhookVerifier(
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
            max_age_seconds=settings.webhook_max_age_seconds,
        ),
        webhook_effects=WebhookEffects(presence, store, ingresses),
        metrics=metrics,
        metrics_registry=metrics_registry,
        stats=stats,
        state_gauges=StateGauges(stats, metrics_registry, metrics.dependency_error),
        livekit=livekit,
        presence_sync=presence_sync,
    )
    try:
        if livekit is not None:
            await livekit.start()
        if settings.cameras_file is not None and seed_cameras:
            count = await registry.seed(settings.cameras_file)
            log.info("cameras seeded", extra={"count": count, "file": str(settings.cameras_file)})
        if run_loops:
            services.loops.start()
        yield services
    finally:
        await services.loops.stop()
        await services.lifecycle.close()
        await codec_probe.close()
        await services.runtime.close()
        if livekit is not None:
            await livekit.close()
        await changes.aclose()
        await client.aclose()
