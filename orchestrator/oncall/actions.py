"""The on-call repairs: safe while the service runs, idempotent, and only through the scripts.

Nothing here deletes or sets a key by hand (the predecessor's ``--scan | xargs DEL`` and
``SET stream:count:X 0``). Leases end through the ``release`` script, so counters and the
pusher state move exactly as they do for a dashboard release; a pusher stops through the
``pusher_stop`` script (``force`` only skips the drain grace) and the fenced removal, so a
replica that claimed a new start meanwhile is never undone; counters are rebuilt from the
lease sets by ``recount``. Running any command twice leaves the same state as running it once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from orchestrator.domain.ids import (
    TOTAL,
    room_name,
    validate_camera_id,
    validate_reservation_id,
    viewer_identity,
)
from orchestrator.domain.models import Lease, Recount
from orchestrator.domain.pusher import PusherState
from orchestrator.errors import LiveKitRejected, LiveKitUnavailable
from orchestrator.reconcile.plan import Correction
from orchestrator.store.inspection import CounterState, StateInspector
from orchestrator.wiring import Services

log = logging.getLogger(__name__)

RESET_CONCURRENCY = 8
POLL_SECONDS = 0.2


@dataclass
class CameraReset:
    camera_id: str
    released: int = 0
    kicked: int = 0
    container_left: bool = False  # a pusher of this camera is still on the runtime
    state: str = PusherState.IDLE
    notes: list[str] = field(default_factory=list)


@dataclass
class Kick:
    reservation_id: str
    released: bool
    participant_removed: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class ReconcilePlan:
    corrections: list[Correction]
    counters: list[CounterState]  # the drifted ones
    applied: bool
    presence: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class OnCall:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.inspector = StateInspector(services.client)

    def configured_sources(self) -> set[str]:
        return {s for s in self.s.settings.source_limits if s != TOTAL}

    # --- one reservation ----------------------------------------------------------------

    async def kick(self, reservation_id: str) -> Kick:
        """Release the reservation and remove its participant from the camera's room."""
        validate_reservation_id(reservation_id)
        lease = await self.s.store.lease_of(reservation_id)
        if lease is None:
            return Kick(reservation_id, False, False, ["no such reservation (already released)"])
        release = await self.s.store.release_lease(lease)
        kick = Kick(reservation_id, release.released, False)
        kick.participant_removed = await self._remove_participant(lease, kick.notes)
        if self.s.livekit is None:
            kick.notes.append("LiveKit is disabled (CCTV_LIVEKIT_ENABLED): no room to leave")
        return kick

    async def _remove_participant(self, lease: Lease, notes: list[str]) -> bool:
        if self.s.livekit is None:
            return False
        room, identity = room_name(lease.camera_id), viewer_identity(lease.reservation_id)
        try:
            return await self.s.livekit.remove_participant(room, identity)
        except (LiveKitUnavailable, LiveKitRejected) as exc:
            notes.append(f"{identity} not removed from {room}: {exc}")
            return False

    # --- one camera ---------------------------------------------------------------------

    async def reset_camera(self, camera_id: str) -> CameraReset:
        """End every lease of the camera, disconnect its viewers, stop its pusher now."""
        validate_camera_id(camera_id)
        report = CameraReset(camera_id)
        for row in await self.inspector.leases(camera_id, live_only=False):
            release = await self.s.store.release_lease(row.lease)
            report.released += release.released
            report.kicked += await self._remove_participant(row.lease, report.notes)
        await self._stop_now(report)
        return report

    async def _stop_now(self, report: CameraReset) -> None:
        camera_id = report.camera_id
        settings = self.s.settings
        deadline = time.monotonic() + settings.claim_seconds + settings.docker_timeout_seconds
        while True:
            view = await self.s.pushers.view(camera_id)
            report.state = view.state
            if view.state == PusherState.IDLE:
                report.container_left = not await self._remove_orphan(camera_id)
                return
            if view.state == PusherState.DRAINING:
                if await self.s.lifecycle.stop_now(camera_id):
                    continue
            elif view.state != PusherState.STOPPING:  # viewers came back after the releases
                report.notes.append(f"new viewers arrived during the reset ({view.state})")
                report.container_left = (await self.s.runtime.get(camera_id)) is not None
                return
            if time.monotonic() > deadline:
                report.notes.append(f"gave up waiting for {view.state} to finish")
                report.container_left = (await self.s.runtime.get(camera_id)) is not None
                return
            await asyncio.sleep(POLL_SECONDS)  # another process owns the stop: let it finish

    async def _remove_orphan(self, camera_id: str) -> bool:
        """An IDLE camera's leftover pusher goes through the same fence as an orphan.
        True when nothing holds the camera's name any more (one that is not ours stays)."""
        info = await self.s.runtime.get(camera_id)
        if info is None:
            return True
        if not info.owned_by(self.s.runtime.instance):
            return False
        return await self.s.lifecycle.remove_orphan(camera_id, info.generation or 0)

    # --- everything ---------------------------------------------------------------------

    async def reset_all(self) -> tuple[list[CameraReset], list[Recount]]:
        """Reset every camera with state, leases or a container; then recount every source."""
        listing = await self.s.runtime.list_managed()
        cameras = await self.inspector.cameras_in_use()
        instance = self.s.runtime.instance
        cameras |= {c.camera_id for c in listing if c.owned_by(instance) and c.camera_id}
        slots = asyncio.Semaphore(RESET_CONCURRENCY)

        async def one(camera_id: str) -> CameraReset:
            async with slots:
                return await self.reset_camera(camera_id)

        resets = list(await asyncio.gather(*(one(c) for c in sorted(cameras))))
        return resets, await self.recount(None)

    async def recount(self, source: str | None) -> list[Recount]:
        """Rebuild counters from the lease sets (one source, or every known source)."""
        sources = (
            [source]
            if source is not None
            else await self.inspector.sources(self.configured_sources())
        )
        return [await self.s.store.recount(s) for s in sources]

    async def _expects_containers(self) -> bool:
        snapshot = await self.s.pushers.snapshot()
        return any(view.phase == PusherState.RUNNING for view in snapshot.views.values())

    async def reconcile(self, *, dry_run: bool) -> ReconcilePlan:
        """One reconcile pass over the runtime and the counters (and LiveKit, when
        applying)."""
        corrections = await self.s.reconciler.run_once(dry_run=dry_run)
        sources = await self.inspector.sources(self.configured_sources())
        drifted = [c for c in await self.inspector.counters(sources) if c.drift]
        plan = ReconcilePlan(corrections, drifted, applied=not dry_run)
        if self.s.reconciler.empty_passes == 1 and await self._expects_containers():
            plan.notes.append(
                "the engine lists no pusher: missing containers are reported only after a "
                "second pass confirms the empty listing"
            )
        if dry_run:
            if self.s.presence_sync is not None:
                plan.notes.append(
                    "the LiveKit pass (ghost viewers, orphan ingresses) runs only when applying"
                )
            return plan
        for counter in drifted:
            await self.s.store.recount(counter.source)
        if self.s.presence_sync is not None:
            plan.presence = dict(await self.s.presence_sync.run_once())
        await self.s.lifecycle.close()  # let the starts it scheduled finish (bounded)
        return plan
