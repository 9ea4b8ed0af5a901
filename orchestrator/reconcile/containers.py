"""Converge the pusher runtime with Valkey: the reconcile pass (docs/architecture.md, flow 2).

:class:`Reconciler` reads the Valkey snapshot and then the runtime's listing, plans (``plan.py``)
and applies each correction through the same scripts the rest of the service uses, so a
correction is fenced like any other step:

- ``orphan``: the fence script first lifts the camera's generation to the container's label,
  so the removal can never touch a container that a start claimed after the snapshot;
- ``dead`` / ``missing``: recorded as a failure, so the restart backoff applies;
- ``start``: claimed and started.

It never acts on a failed listing (the exception ends the pass) and never on the strength of
an empty one: an empty listing while Valkey expects containers must be seen on two passes in a
row before a container counts as missing. It sees only this deployment instance's pushers
(the runtime lists only those; the pass filters again), so another deployment's are never
orphans. Applying a plan and planning again yields no corrections: a second pass changes
nothing.
"""

from __future__ import annotations

import logging

from orchestrator.domain.containers import Workload
from orchestrator.domain.pusher import Snapshot
from orchestrator.pusher.lifecycle import Lifecycle
from orchestrator.reconcile.plan import Correction, plan

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle  # its metrics count the corrections
        self._empty_passes = 0

    @property
    def empty_passes(self) -> int:
        """Passes in a row that found no managed container (2 trusts the empty listing)."""
        return self._empty_passes

    async def run_once(self, *, dry_run: bool = False) -> list[Correction]:
        """One pass: snapshot, list, plan, apply. Returns the corrections it applied.

        The snapshot comes first. A pusher recorded RUNNING in it was created before the
        listing was taken, so its absence from the listing means it is gone. In the other
        order, a start that completed between the two reads would look missing and be
        restarted. A container that a start made between the two reads looks like an orphan
        instead, and the orphan fence refuses to remove it (the camera is in use again)."""
        runtime = self.lifecycle.runtime
        snapshot = await self.lifecycle.pushers.snapshot(all_watched=True)
        listing = [  # raises: nothing is done
            w for w in await runtime.list_managed() if w.owned_by(runtime.instance)
        ]
        self._empty_passes = self._empty_passes + 1 if not listing else 0
        corrections = [
            c
            for c in plan(listing, snapshot, trust_empty=self._empty_passes >= 2)
            if not self.lifecycle.busy(c.camera_id)
        ]
        if dry_run:
            return corrections
        await self._record_placements(listing, snapshot)
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

    async def _record_placements(self, listing: list[Workload], snapshot: Snapshot) -> None:
        """Where each recorded pusher runs, or why it waits, when that changed (stats show
        it; a Swarm task that no node has room for waits with the scheduler's reason)."""
        for found in listing:
            view = snapshot.views.get(found.camera_id or "")
            if view is None or view.container_id != found.ref:
                continue
            waiting = found.waiting if not found.stopped else None
            if (view.node, view.waiting) != (found.node, waiting):
                await self.lifecycle.pushers.record_placement(
                    view.camera_id, view.generation, found.ref, found.node, waiting
                )

    async def _apply(self, correction: Correction) -> bool:
        camera_id = correction.camera_id
        pushers = self.lifecycle.pushers
        if correction.kind == "orphan":  # False: a viewer arrived meanwhile
            return await self.lifecycle.remove_orphan(camera_id, correction.generation)
        if correction.kind in ("dead", "missing"):
            retry_at = await pushers.mark_failed(
                camera_id,
                correction.generation,
                correction.reason,
                container_id=correction.container_id,
                displaced=correction.displaced,
            )
            return retry_at is not None
        self.lifecycle.spawn(camera_id, self.lifecycle.claim_and_start(camera_id))
        return True
