"""What the on-call read commands show (``status``, ``cameras``, ``reservations``).

Plain data, JSON-ready (``--json`` prints it as is; the tables are rendered from it). Read
only: the reconcile plan is computed with ``dry_run`` and nothing is applied. No view holds a
secret: RTSP URLs appear redacted, keys and tokens never.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.domain.containers import Workload
from orchestrator.domain.pusher import PusherState
from orchestrator.domain.redact import redact_url
from orchestrator.errors import OrchestratorError, TemporaryError
from orchestrator.oncall.actions import OnCall
from orchestrator.state_metrics import PUSHER_STATES


@dataclass
class SourceRow:
    source: str
    current: int  # live leases (the truth)
    counter: int | None  # stream:count:<S> as stored (None: corrupt)
    limit: int


@dataclass
class ContainerRow:
    """One pusher as the runtime lists it: ``status`` is the engine's word (``running``,
    ``exited``), ``phase`` the runtime-neutral one, ``container_id`` the ref's first 12,
    ``node`` the Swarm node it runs on (None on one engine)."""

    name: str
    camera_id: str | None
    generation: int | None
    status: str
    exit_code: int | None
    container_id: str
    phase: str = ""
    node: str | None = None  # where it runs, when the runtime spreads pushers (a Swarm node)

    @classmethod
    def of(cls, info: Workload) -> ContainerRow:
        status = info.engine_state or info.phase.lower()
        return cls(
            info.name,
            info.camera_id,
            info.generation,
            status,
            info.exit_code,
            info.ref[:12],
            str(info.phase),
            info.node,
        )


@dataclass
class Status:
    dependencies: dict[str, str]
    reservations: int
    total_limit: int
    sources: list[SourceRow]
    pushers: dict[str, int]
    containers: list[ContainerRow] | None  # None: the runtime did not answer
    drift: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def status(oncall: OnCall) -> Status:
    s = oncall.s
    stats = await s.streams.stats()  # Valkey is required: its failure ends the command
    known = await oncall.inspector.sources(oncall.configured_sources())
    sources = sorted(set(known) | {src.source for src in stats.sources})
    counters = {c.source: c for c in await oncall.inspector.counters(sources)}
    rows = [
        SourceRow(src.source, src.current, counters[src.source].counter, src.limit)
        for src in stats.sources
    ]
    pushers = dict.fromkeys(PUSHER_STATES, 0)
    for camera in stats.cameras:
        pushers[camera.pusher_state] = pushers.get(camera.pusher_state, 0) + 1
    result = Status(
        dependencies={"valkey": "ok", s.runtime.kind: "ok", "livekit": await _livekit(oncall)},
        reservations=stats.total_current,
        total_limit=stats.total_limit,
        sources=rows,
        pushers=pushers,
        containers=None,
    )
    result.drift = [
        f"counter {c.source}: stored {c.raw!r}, live leases {c.live} (run: recount {c.source})"
        for c in counters.values()
        if c.drift
    ]
    try:
        listing = await s.runtime.list_managed()
        plan = await s.reconciler.run_once(dry_run=True)
    except TemporaryError as exc:
        result.dependencies[s.runtime.kind] = f"unreachable ({type(exc).__name__})"
        return result
    result.containers = [ContainerRow.of(c) for c in listing]
    result.drift += [
        f"{c.kind} {c.camera_id} {c.container_id[:12]} {c.reason}".rstrip() + " (run: reconcile)"
        for c in plan
    ]
    return result


async def _livekit(oncall: OnCall) -> str:
    if oncall.s.livekit is None:
        return "disabled"
    try:
        return "ok" if await oncall.s.livekit.ping() else "unreachable"
    except OrchestratorError as exc:
        return f"unreachable ({type(exc).__name__})"


async def cameras(oncall: OnCall) -> list[dict[str, Any]]:
    s = oncall.s
    stats = {c.camera_id: c for c in (await s.streams.stats()).cameras}
    rows: list[dict[str, Any]] = []
    for camera in await s.registry.all():
        stat = stats.get(camera.camera_id)
        rows.append(
            {
                "camera_id": camera.camera_id,
                "name": camera.name,
                "enabled": camera.enabled,
                "state": stat.pusher_state if stat else PusherState.IDLE,
                "reserved": stat.reserved_count if stat else 0,
                "viewers": stat.viewer_count if stat else 0,
                "restarts": stat.restarts if stat else 0,
                "last_error": (stat.last_error if stat else None) or "",
                "rtsp_url": redact_url(camera.rtsp_url),
            }
        )
    return rows


async def reservations(oncall: OnCall, camera_id: str | None) -> list[dict[str, Any]]:
    now = await oncall.inspector.now_ms()
    rows = []
    for row in await oncall.inspector.leases(camera_id):
        info = row.info
        rows.append(
            {
                "reservation_id": row.lease.reservation_id,
                "camera_id": row.lease.camera_id,
                "source": row.lease.source,
                "user_id": info.user_id if info else "",
                "connected": info.connected if info else False,
                "expires_in_s": round((row.expires_at_ms - now) / 1000, 1),
            }
        )
    return rows
