"""Stream statistics, read from Valkey only: three round trips, no LiveKit call.

"Now" is Valkey's ``TIME``, read by the script (``store/clock.py``): replicas whose clocks drift
report the same live leases. (Each call of one read reads it; they run milliseconds apart, in
one pipeline.)

``viewer_count`` is the number of viewers connected to the camera's LiveKit room (presence
from webhooks, corrected by listings) that also hold a live lease; ``reserved_count`` is the
number of live leases. The publisher is never a viewer: ``publisher_connected`` says whether
the camera's ingress participant is in the room.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from orchestrator.domain.codec import CODEC_FIELDS, CodecReport
from orchestrator.domain.ids import TOTAL
from orchestrator.domain.models import LEASE_SEP, Lease
from orchestrator.domain.pusher import PLACEMENT_FIELDS, PusherState, placement
from orchestrator.store import keys
from orchestrator.store.changes import ChangedKeys
from orchestrator.store.errors import translated
from orchestrator.store.reservations import LeasePolicy
from orchestrator.store.scripts import Scripts, check


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


YIELD_EVERY = 250  # cameras handled between two yields to the event loop
# Cameras per script call: each call keeps Valkey busy for a few ms at most, so other
# clients' commands run between them; the calls of one read still go out in one pipeline.
CAMERAS_PER_CALL = 200
# More leases than this past their deadline since the last read: read every camera.
MOST_EXPIRED = 2000

# The metadata fields stats show, read by ``stats_snapshot.lua`` in this order.
META_FIELDS = tuple(
    dict.fromkeys(
        (
            "state",
            "source",
            "active_since",
            "generation",
            "restarts",
            "retry_at",
            "last_error",
            "pub_sid",
            "ingress_status",
            *CODEC_FIELDS,
            *PLACEMENT_FIELDS,
        )
    )
)


class StatsReader:
    """Reads :class:`StreamStats`: the active cameras and sources, then a read-only script
    (``lua/stats_snapshot.lua``) that counts each camera's live leases in Valkey and answers
    one JSON text per camera, called once per :data:`CAMERAS_PER_CALL` cameras (one
    pipeline).

    With ``changes`` (key tracking, :class:`~orchestrator.store.changes.ChangedKeys` over
    :data:`CAMERA_PREFIXES`) a read asks Valkey only for the cameras that may differ from the
    last read: those whose keys were written since, those with a lease whose deadline passed
    since (``lua/stats_expired.lua``), and those newly active. Every other camera keeps its
    row. Without it, or whenever tracking cannot say what changed, a read asks for every
    camera.

    Python work is per camera, not per lease, and only for cameras whose text changed: an
    unchanged camera's :class:`CameraStat` is the same object as last time (renderers may
    cache by identity). Reads of one reader run one at a time."""

    def __init__(
        self,
        client: Redis,
        scripts: Scripts,
        policy: LeasePolicy,
        *,
        clock_offset_ms: int = 0,
        changes: ChangedKeys | None = None,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._policy = policy
        self.clock_offset_ms = clock_offset_ms
        self._changes = changes
        self._lock = asyncio.Lock()
        self._rows: dict[str, tuple[str, CameraStat]] = {}
        self._since: tuple[int, int] | None = None  # (Valkey time covered, its clock offset)
        self._last_sources: tuple[set[str], list[str]] | None = None
        self.cameras_read = 0  # cameras asked of Valkey, over all reads (tests, benchmarks)

    async def read(self) -> StreamStats:
        async with self._lock:
            try:
                return await self._read()
            except BaseException:
                self._since = None  # what changed meanwhile is lost: the next read reads all
                raise

    async def _read(self) -> StreamStats:
        changed = await self._changes.take() if self._changes is not None else None
        offset, since = self.clock_offset_ms, self._since
        if changed is None or (since is not None and since[1] != offset):
            since = None  # every camera is read: no lapsed lease need be listed
        async with translated(), self._client.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.ACTIVE_CAMERAS)
            pipe.smembers(keys.SOURCES)
            listed, expiring = await asyncio.gather(
                pipe.execute(),
                self._scripts.stats_expired(
                    [keys.ALL_LEASES],
                    [offset, since[0] if since is not None else -1, MOST_EXPIRED],
                ),
            )
        active, known = listed
        covered, expired = check("stats_expired", expiring)
        sources = self._sources(known)
        cameras = sorted(active)
        if changed is None or since is None or expired is None:
            wanted = cameras
        else:
            changed.update(Lease.parse(m).camera_id for m in expired)
            wanted = [c for c in cameras if c in changed or c not in self._rows]
        now, total, total_limit, rows, limits = await self._snapshot(wanted, sources)
        stats = await self._camera_stats(cameras, dict(zip(wanted, rows, strict=True)))
        self._since = (min(int(covered), int(now)), offset)
        return self._stream_stats(int(now), int(total), total_limit, stats, sources, limits)

    async def _snapshot(self, cameras: list[str], sources: list[str]) -> list[Any]:
        """``stats_snapshot.lua`` for ``cameras``, one call per :data:`CAMERAS_PER_CALL`, all
        in one pipeline; the first call also reads the limits. ``[now, live leases, total
        limit, rows, limits]``, now and the total of the first call."""
        calls: list[tuple[list[str], int]] = []
        for start in range(0, max(len(cameras), 1), CAMERAS_PER_CALL):
            chunk = cameras[start : start + CAMERAS_PER_CALL]
            call_keys = [keys.ALL_LEASES, keys.TOTAL_LIMIT]
            for camera_id in chunk:
                call_keys += camera_keys(camera_id)
            calls.append((call_keys, len(chunk)))
        calls[0][0].extend(keys.limit(source) for source in sources)
        replies = await asyncio.gather(
            *(
                self._scripts.stats_snapshot(
                    call_keys, [self.clock_offset_ms, count, LEASE_SEP, *META_FIELDS]
                )
                for call_keys, count in calls
            )
        )
        parts = [check("stats_snapshot", reply) for reply in replies]
        now, total, total_limit, _, limits = parts[0]
        self.cameras_read += len(cameras)
        return [now, total, total_limit, [row for part in parts for row in part[3]], limits]

    def _sources(self, known: set[str]) -> list[str]:
        last = self._last_sources
        if last is not None and last[0] == known:
            return last[1]
        configured = {s for s, _ in self._policy.default_limits if s != TOTAL}
        sources = sorted((set(known) | configured) - {TOTAL})
        self._last_sources = (known, sources)
        return sources

    def _stream_stats(
        self,
        now: int,
        total: int,
        total_limit: Any,
        stats: list[CameraStat],
        sources: list[str],
        limits: list[Any],
    ) -> StreamStats:
        counts_of: dict[str, int] = dict.fromkeys(sources, 0)
        cameras_of: dict[str, int] = dict.fromkeys(sources, 0)
        for stat in stats:
            for source, n in stat.viewers_by_source.items():
                counts_of[source] = counts_of.get(source, 0) + n
                cameras_of[source] = cameras_of.get(source, 0) + 1
        source_stats = [
            SourceStat(
                source=source,
                current=counts_of.get(source, 0),
                limit=_int(limit, self._policy.limit_for(source)),
                active_cameras=cameras_of.get(source, 0),
            )
            for source, limit in zip(sources, limits, strict=True)
        ]
        return StreamStats(
            timestamp_ms=now,
            cameras=[s for s in stats if s.reserved_count or s.pusher_state != PusherState.IDLE],
            sources=source_stats,
            total_current=total,
            total_limit=_int(total_limit, self._policy.limit_for(TOTAL)),
        )

    async def read_camera(self, camera_id: str) -> tuple[int, CameraStat] | None:
        """One camera's stats and Valkey's time, in one call whose cost does not depend on the
        number of other cameras; None when no such camera is registered."""
        reply = await self._scripts.stats_snapshot(
            [keys.ALL_LEASES, keys.TOTAL_LIMIT, *camera_keys(camera_id)],
            [self.clock_offset_ms, 1, LEASE_SEP, *META_FIELDS],
        )
        now, _, _, rows, _ = check("stats_snapshot", reply)
        row = json.loads(rows[0])
        if not row[3]:  # no name (false): the camera hash does not exist
            return None
        return int(now), camera_stat(camera_id, row)

    async def _camera_stats(self, cameras: list[str], fresh: dict[str, str]) -> list[CameraStat]:
        """Every active camera's stat: from its fresh row where one was read, else the last."""
        previous, current = self._rows, {}
        stats: list[CameraStat] = []
        for i, camera_id in enumerate(cameras, 1):
            if i % YIELD_EVERY == 0:  # let requests in between: no long stall at many cameras
                await asyncio.sleep(0)
            known = previous.get(camera_id)
            row = fresh.get(camera_id)
            if known is not None and (row is None or known[0] == row):
                entry = known
            else:
                assert row is not None, camera_id  # a camera not cached is always read
                entry = (row, camera_stat(camera_id, json.loads(row)))
            current[camera_id] = entry
            stats.append(entry[1])
        self._rows = current
        return stats


# The prefixes of the keys ``stats_snapshot.lua`` reads of a camera: a write to any of them
# changes what stats show of that camera (``<prefix><camera id>``).
CAMERA_PREFIXES = (
    keys.camera_leases(""),
    keys.metadata(""),
    keys.camera(""),
    keys.presence(""),
)


def camera_keys(camera_id: str) -> list[str]:
    """The four keys ``stats_snapshot.lua`` reads of one camera, in its order."""
    return [
        keys.camera_leases(camera_id),
        keys.metadata(camera_id),
        keys.camera(camera_id),
        keys.presence(camera_id),
    ]


def camera_stat(camera_id: str, row: list[Any]) -> CameraStat:
    """One camera of the script (its JSON text, decoded): ``[live leases, connected,
    {source: n}, name, [value of each of META_FIELDS]]``."""
    reserved, connected, by_source, name, values = row
    meta = {f: v for f, v in zip(META_FIELDS, values, strict=True) if isinstance(v, str)}
    return CameraStat(
        camera_id=camera_id,
        camera_name=name or camera_id,
        viewer_count=int(connected),
        reserved_count=int(reserved),
        publisher_connected=bool(meta.get("pub_sid")),
        ingress_status=meta.get("ingress_status") or None,
        viewers_by_source={str(s): int(n) for s, n in by_source.items()} if by_source else {},
        source=meta.get("source", ""),
        active_since_ms=_int(meta.get("active_since"), 0) or None,
        pusher_state=meta.get("state", PusherState.IDLE),
        generation=_int(meta.get("generation")),
        restarts=_int(meta.get("restarts")),
        retry_at_ms=_int(meta.get("retry_at"), 0) or None,
        last_error=meta.get("last_error") or None,
        codec=CodecReport.from_meta(meta),
        **placement(meta),
    )
