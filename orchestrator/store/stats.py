"""Stream statistics, read from Valkey only: two pipelined round trips, no LiveKit call.

"Now" is Valkey's ``TIME`` (``store/clock.py``), read in the first round trip: replicas whose
clocks drift report the same live leases.

``viewer_count`` is the number of viewers connected to the camera's LiveKit room (presence
from webhooks, corrected by listings) that also hold a live lease; ``reserved_count`` is the
number of live leases. The publisher is never a viewer: ``publisher_connected`` says whether
the camera's ingress participant is in the room.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from orchestrator.domain.codec import CodecReport
from orchestrator.domain.ids import TOTAL
from orchestrator.domain.models import Lease
from orchestrator.domain.pusher import PusherState, placement
from orchestrator.store import keys
from orchestrator.store.clock import time_ms
from orchestrator.store.errors import translated
from orchestrator.store.reservations import LeasePolicy


@dataclass(frozen=True, slots=True)
class CameraStat:
    camera_id: str
    camera_name: str
    viewer_count: int
    reserved_count: int
    publisher_connected: bool
    ingress_status: str | None
    viewers_by_source: dict[str, int]
    source: str
    active_since_ms: int | None
    pusher_state: str
    generation: int
    restarts: int
    last_error: str | None
    retry_at_ms: int | None = None
    codec: CodecReport | None = None
    node: str | None = None
    waiting: str | None = None


@dataclass(frozen=True, slots=True)
class SourceStat:
    source: str
    current: int
    limit: int
    active_cameras: int


@dataclass(frozen=True, slots=True)
class StreamStats:
    timestamp_ms: int
    cameras: list[CameraStat] = field(default_factory=list)
    sources: list[SourceStat] = field(default_factory=list)
    total_current: int = 0
    total_limit: int = 0


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


class StatsReader:
    def __init__(self, client: Redis, policy: LeasePolicy, *, clock_offset_ms: int = 0) -> None:
        self._client = client
        self._policy = policy
        self.clock_offset_ms = clock_offset_ms

    async def read(self) -> StreamStats:
        async with translated():
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.smembers(keys.ACTIVE_CAMERAS)
                pipe.smembers(keys.SOURCES)
                pipe.get(keys.TOTAL_LIMIT)
                server_time, active, known, total_limit = await pipe.execute()
            now = time_ms(server_time) + self.clock_offset_ms
            live = f"({now}"
            cameras = sorted(active)
            configured = {s for s, _ in self._policy.default_limits if s != TOTAL}
            sources = sorted((set(known) | configured) - {TOTAL})
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zcount(keys.ALL_LEASES, live, "+inf")
                for camera_id in cameras:
                    pipe.zrange(keys.camera_leases(camera_id), live, "+inf", byscore=True)
                    pipe.hgetall(keys.metadata(camera_id))
                    pipe.hget(keys.camera(camera_id), "name")
                    pipe.smembers(keys.presence(camera_id))
                for source in sources:
                    pipe.get(keys.limit(source))
                total, *rows = await pipe.execute()
        camera_stats: list[CameraStat] = []
        cameras_of: dict[str, set[str]] = {s: set() for s in sources}
        counts_of: dict[str, int] = dict.fromkeys(sources, 0)
        for i, camera_id in enumerate(cameras):
            members, meta, name, present = rows[4 * i : 4 * i + 4]
            by_source: dict[str, int] = {}
            connected = 0
            for member in members:
                lease = Lease.parse(member)
                source = lease.source
                connected += lease.reservation_id in present
                by_source[source] = by_source.get(source, 0) + 1
                cameras_of.setdefault(source, set()).add(camera_id)
                counts_of[source] = counts_of.get(source, 0) + 1
            state = meta.get("state", PusherState.IDLE)
            if not members and state == PusherState.IDLE:
                continue
            camera_stats.append(
                CameraStat(
                    camera_id=camera_id,
                    camera_name=name or camera_id,
                    viewer_count=connected,
                    reserved_count=len(members),
                    publisher_connected=bool(meta.get("pub_sid")),
                    ingress_status=meta.get("ingress_status") or None,
                    viewers_by_source=by_source,
                    source=meta.get("source", ""),
                    active_since_ms=_int(meta.get("active_since"), 0) or None,
                    pusher_state=state,
                    generation=_int(meta.get("generation")),
                    restarts=_int(meta.get("restarts")),
                    retry_at_ms=_int(meta.get("retry_at"), 0) or None,
                    last_error=meta.get("last_error") or None,
                    codec=CodecReport.from_meta(meta),
                    **placement(meta),
                )
            )
        limits = rows[4 * len(cameras) :]
        source_stats = [
            SourceStat(
                source=source,
                current=counts_of.get(source, 0),
                limit=_int(limit, self._policy.limit_for(source)),
                active_cameras=len(cameras_of.get(source, ())),
            )
            for source, limit in zip(sources, limits, strict=True)
        ]
        return StreamStats(
            timestamp_ms=now,
            cameras=camera_stats,
            sources=source_stats,
            total_current=int(total),
            total_limit=_int(total_limit, self._policy.limit_for(TOTAL)),
        )
