"""Converge Docker with Valkey: the reconcile pass (docs/architecture.md, flow 2).

:func:`plan` is pure: from one container listing and one Valkey snapshot it lists the
corrections. :class:`Reconciler` reads both, plans, and applies each correction through the
same scripts the rest of the service uses, so a correction is fenced like any other step:

- ``orphan``: a managed container whose camera is IDLE with no live lease. The fence script
  first lifts the camera's generation to the container's label, so the removal can never
  touch a container that a start claimed after the snapshot.
- ``dead`` / ``missing``: the recorded container of a RUNNING camera stopped, or is not on
  the engine at all. Recorded as a failure, so the restart backoff applies.
- ``start``: a camera with viewers and no pusher (IDLE). Claimed and started.

It never acts on a failed listing (the exception ends the pass) and never on the strength
of an empty one: an empty listing while Valkey expects containers must be seen on two
passes in a row before a container counts as missing. Applying a plan and planning again
yields no corrections: a second pass changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.pusher.lifecycle import Lifecycle
from orchestrator.pusher.store import Snapshot
from orchestrator.runtime.spec import ContainerInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Correction:
    kind: str  # orphan | dead | missing | start
    camera_id: str
    container_id: str = ""
    generation: int = 0
    reason: str = ""


def plan(
    listing: list[ContainerInfo], snapshot: Snapshot, *, trust_empty: bool
) -> list[Correction]:
    corrections: list[Correction] = []
    by_camera = {c.camera_id: c for c in listing if c.managed and c.camera_id}
    for camera_id, container in sorted(by_camera.items()):
        view = snapshot.views.get(camera_id)
        state = view.state if view is not None else "IDLE"
        if state == "IDLE" and snapshot.watched.get(camera_id, 0) == 0:
            corrections.append(
                Correction("orphan", camera_id, container.id, container.generation or 0)
            )
    listing_usable = bool(listing) or trust_empty
    for camera_id, view in sorted(snapshot.views.items()):
        if view.phase != "RUNNING" or view.container_id is None or not listing_usable:
            continue
        found = by_camera.get(camera_id)
        if found is None or found.id != view.container_id:
            reason = "container missing from the engine"
            corrections.append(
                Correction("missing", camera_id, view.container_id, view.generation, reason)
            )
        elif found.stopped:  # not "created": a listing taken mid-start is not a death
            reason = f"container {found.status}, exit code {found.exit_code}"
            corrections.append(Correction("dead", camera_id, found.id, view.generation, reason))
    for camera_id, live in sorted(snapshot.watched.items()):
        view = snapshot.views.get(camera_id)
        if live > 0 and (view is None or view.state == "IDLE"):
            corrections.append(Correction("start", camera_id))
    return corrections


class Reconciler:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle  # its metrics count the corrections
        self._empty_passes = 0

    @property
    def empty_passes(self) -> int:
        """Passes in a row that found no managed container (2 trusts the empty listing)."""
        return self._empty_passes

    async def run_once(self, *, dry_run: bool = False) -> list[Correction]:
        """One pass: list, snapshot, plan, apply. Returns the corrections it applied."""
        listing = await self.lifecycle.runtime.list_managed()  # raises: nothing is done
        snapshot = await self.lifecycle.pushers.snapshot(all_watched=True)
        self._empty_passes = self._empty_passes + 1 if not listing else 0
        corrections = [
            c
            for c in plan(listing, snapshot, trust_empty=self._empty_passes >= 2)
            if not self.lifecycle.busy(c.camera_id)
        ]
        if dry_run:
            return corrections
        applied = [c for c in corrections if await self._apply(c)]
        for correction in applied:
            self.lifecycle.metrics.corrected(correction.kind)
            log.info(
                "reconcile correction",
                extra={
                    "kind": correction.kind,
                    "camera_id": correction.camera_id,
                    "container_id": correction.container_id,
                    "reason": correction.reason,
                },
            )
        return applied

    async def _apply(self, correction: Correction) -> bool:
        camera_id = correction.camera_id
        pushers = self.lifecycle.pushers
        if correction.kind == "orphan":
            fence = await pushers.fence(camera_id, correction.generation)
            if fence is None:
                return False  # a viewer arrived meanwhile: not an orphan any more
            return await self.lifecycle.runtime.remove(camera_id, max_generation=fence)
        if correction.kind in ("dead", "missing"):
            retry_at = await pushers.mark_failed(
                camera_id,
                correction.generation,
                correction.reason,
                container_id=correction.container_id,
            )
            return retry_at is not None
        self.lifecycle.spawn(camera_id, self.lifecycle.claim_and_start(camera_id))
        return True
