"""The periodic LiveKit pass: presence from listings, ghost removal, orphan ingresses.

Webhooks can be dropped, so every ``livekit_sync_interval_seconds`` this pass lists the
participants of each room that matters (rate-limited) and lets ``presence_sync`` correct the
camera's presence, and lists the ingresses to correct their recorded status. A ``viewer_*``
participant without a live lease of that room is a ghost and is removed (invariant 5 in
docs/architecture.md); ingresses of cameras no longer in the registry are deleted. The
publisher counts as connected from a listing only when its ingress is PUBLISHING: after an
unclean LiveKit stop its participant record can outlive it. Each removal is best-effort: LiveKit
answers 503 for such store-only records, and a refused one is retried by the next pass (tokens
are not revoked). A failed listing changes nothing, and a second pass over an unchanged
world changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable

from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import ParticipantInfo

from orchestrator.domain.ids import (
    VIEWER_PREFIX,
    camera_of_publisher,
    camera_of_room,
    publisher_identity,
    reservation_of_identity,
    room_name,
)
from orchestrator.errors import LiveKitRejected, LiveKitUnavailable
from orchestrator.livekit.gateway import LiveKitGateway
from orchestrator.livekit.ingress_status import IngressStatus, status_at_ns
from orchestrator.livekit.webhooks import participant_version
from orchestrator.metrics import ServiceMetrics
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.presence import ListedViewer, PresenceStore

log = logging.getLogger(__name__)

_ACTIVE = ParticipantInfo.State.ACTIVE
_INGRESS = ParticipantInfo.Kind.INGRESS
_PUBLISHING = IngressState.ENDPOINT_PUBLISHING


# run_once's change names -> cctv_reconcile_corrections_total{kind}
CORRECTION_KINDS = {
    "joined": "presence_joined",
    "left": "presence_left",
    "ghosts": "ghost",
    "ingresses": "orphan_ingress",
}


class RateLimiter:
    """At most ``per_second`` acquisitions per second, spaced evenly."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)


class PresenceSync:
    def __init__(
        self,
        gateway: LiveKitGateway,
        presence: PresenceStore,
        registry: CameraRegistry,
        ingresses: IngressStatus,
        *,
        lists_per_second: float = 20.0,
        concurrency: int = 4,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._metrics = metrics if metrics is not None else ServiceMetrics(None)
        self._gateway = gateway
        self._presence = presence
        self._registry = registry
        self._ingresses = ingresses
        self._limiter = RateLimiter(lists_per_second)
        self._slots = asyncio.Semaphore(concurrency)

    async def run_once(self) -> Counter[str]:
        """One pass; returns what it changed (``joined``, ``left``, ``ghosts``, ``ingresses``).

        Only the room listing is required: any other step that fails (one camera's listing,
        one ghost's removal, the ingress listing, one orphan's deletion) is logged, counted in
        ``cctv_livekit_sync_failures_total{step}`` and tried again by the next pass, while
        the rest of this pass goes on.
        """
        listed_at = await self._presence.server_ms()
        rooms = await self._gateway.list_rooms()
        ingresses = await self._list_ingresses()
        busy = {
            camera_id
            for room in rooms
            if room.num_participants > 0 and (camera_id := camera_of_room(room.name))
        }
        existing = {camera_of_room(room.name) for room in rooms}
        cameras = sorted(busy | await self._presence.tracked_cameras())
        publishing = _publishing(ingresses) if ingresses is not None else None
        changes: Counter[str] = Counter()
        results = await asyncio.gather(
            *(self._camera(c, listed_at, c in existing, publishing) for c in cameras)
        )
        for result in results:
            changes.update(result)
        if ingresses is not None:
            await self._record_statuses(ingresses)
            changes["ingresses"] += await self._orphan_ingresses(ingresses)
        for name, kind in CORRECTION_KINDS.items():
            self._metrics.corrected(kind, changes[name])
        return +changes

    async def _list_ingresses(self) -> list[IngressInfo] | None:
        try:
            return await self._gateway.list_ingresses()
        except (LiveKitUnavailable, LiveKitRejected) as exc:
            self._failed("ingress_listing", exc)
            return None

    async def _camera(
        self, camera_id: str, listed_at: int, listed: bool, publishing: set[str] | None
    ) -> Counter[str]:
        room = room_name(camera_id)
        async with self._slots:
            participants: list[ParticipantInfo] = []
            if listed:
                await self._limiter.acquire()
                try:
                    participants = await self._gateway.list_participants(room)
                except (LiveKitUnavailable, LiveKitRejected) as exc:
                    self._failed("listing", exc, camera_id=camera_id)
                    return Counter()
        viewers, publisher, invalid = _split(camera_id, participants)
        if publisher is not None and publishing is not None and camera_id not in publishing:
            # An ACTIVE ingress participant whose ingress is not PUBLISHING is a record left
            # in LiveKit's store by an unclean stop: it does not make the camera live.
            publisher = None
        result = await self._presence.sync(
            camera_id,
            listed_at_ms=listed_at,
            viewers=viewers,
            publisher=publisher,
            present=await self._presence.present(camera_id),
        )
        ghosts = [VIEWER_PREFIX + rid for rid in result.ghosts] + invalid
        removed = 0
        for identity in ghosts:  # each on its own: LiveKit refuses store-only records (503)
            try:
                if await self._gateway.remove_participant(room, identity):
                    removed += 1
                    log.info(
                        "ghost viewer removed",
                        extra={"camera_id": camera_id, "identity": identity},
                    )
            except (LiveKitUnavailable, LiveKitRejected) as exc:
                self._failed("ghost_removal", exc, camera_id=camera_id, identity=identity)
        return Counter({"joined": result.joined, "left": result.left, "ghosts": removed})

    async def _record_statuses(self, ingresses: list[IngressInfo]) -> None:
        """Correct dropped ``ingress_*`` webhooks from the listing (the script ignores any
        status not newer than the recorded one, and ingresses not bound to the camera)."""
        for info in ingresses:
            camera_id = _ours(info)
            if camera_id is None or not status_at_ns(info.state):
                continue
            event_id = f"sync_{info.ingress_id}_{status_at_ns(info.state)}"
            await self._ingresses.record(event_id, camera_id, info)

    async def _orphan_ingresses(self, ingresses: list[IngressInfo]) -> int:
        deleted = 0
        for info in ingresses:
            camera_id = _ours(info)
            if camera_id is None or await self._registry.get(camera_id) is not None:
                continue
            try:
                if await self._gateway.delete_ingress(info.ingress_id):
                    deleted += 1
                    log.info(
                        "ingress of a deleted camera removed",
                        extra={"camera_id": camera_id, "ingress_id": info.ingress_id},
                    )
            except (LiveKitUnavailable, LiveKitRejected) as exc:
                self._failed("orphan_ingress", exc, camera_id=camera_id)
        return deleted

    def _failed(self, step: str, exc: Exception, **fields: str) -> None:
        self._metrics.sync_failures.labels(step).inc()
        log.warning(
            "livekit pass step failed; the next pass retries it",
            extra={"step": step, "error": str(exc), **fields},
        )


def _ours(info: IngressInfo) -> str | None:
    """The camera of one of our ingresses (named and joining as ``camera_<id>_publisher``)."""
    camera_id = camera_of_publisher(info.name)
    if camera_id is None or info.participant_identity != info.name:
        return None
    return camera_id


def _publishing(ingresses: Iterable[IngressInfo]) -> set[str]:
    """Cameras whose own ingress LiveKit reports PUBLISHING."""
    return {
        camera_id
        for info in ingresses
        if (camera_id := _ours(info)) and info.state.status == _PUBLISHING
    }


def _split(
    camera_id: str, participants: Iterable[ParticipantInfo]
) -> tuple[list[ListedViewer], tuple[str, str] | None, list[str]]:
    """Listed viewers (ACTIVE, valid ids), the publisher session, and malformed viewer ids."""
    viewers: list[ListedViewer] = []
    publisher: tuple[str, str] | None = None
    invalid: list[str] = []
    for p in participants:
        version = participant_version(p)
        if p.kind == _INGRESS:
            if p.identity == publisher_identity(camera_id) and p.state == _ACTIVE:
                publisher = (p.sid, version)
            continue
        if not p.identity.startswith(VIEWER_PREFIX):
            continue
        rid = reservation_of_identity(p.identity)
        if rid is None:
            invalid.append(p.identity)
        elif p.state == _ACTIVE:
            viewers.append(ListedViewer(rid, p.sid, version))
    return viewers, publisher, invalid
