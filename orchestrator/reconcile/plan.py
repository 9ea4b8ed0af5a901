"""The reconcile plan: from one runtime listing and one Valkey snapshot, the corrections
that would make the runtime agree with Valkey. Pure (``containers.py`` applies them).

- ``orphan``: a pusher of ours whose camera is IDLE with no live lease.
- ``dead`` / ``missing``: the recorded pusher of a RUNNING camera stopped (EXITED or LOST),
  or is not on the runtime at all.
- ``start``: a camera with viewers and no pusher (IDLE).

An empty listing is trusted only when the caller says so (two empty passes in a row): a
failed or unconfirmed empty view never makes a container count as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.containers import Workload
from orchestrator.domain.pusher import PusherState, Snapshot


@dataclass(frozen=True, slots=True)
class Correction:
    kind: str  # orphan | dead | missing | start
    camera_id: str
    container_id: str = ""
    generation: int = 0
    reason: str = ""
    displaced: bool = False  # dead because the runtime took it away: restart at once


def plan(listing: list[Workload], snapshot: Snapshot, *, trust_empty: bool) -> list[Correction]:
    corrections: list[Correction] = []
    by_camera = {c.camera_id: c for c in listing if c.managed and c.camera_id}
    for camera_id, container in sorted(by_camera.items()):
        view = snapshot.views.get(camera_id)
        state = view.state if view is not None else PusherState.IDLE
        if state == PusherState.IDLE and snapshot.watched.get(camera_id, 0) == 0:
            corrections.append(
                Correction("orphan", camera_id, container.ref, container.generation or 0)
            )
    listing_usable = bool(listing) or trust_empty
    for camera_id, view in sorted(snapshot.views.items()):
        if view.phase != PusherState.RUNNING or view.container_id is None or not listing_usable:
            continue
        found = by_camera.get(camera_id)
        if found is None or found.ref != view.container_id:
            reason = "container missing from the engine"
            corrections.append(
                Correction("missing", camera_id, view.container_id, view.generation, reason)
            )
        elif found.stopped:  # not PENDING: a listing taken mid-start is not a death
            state = found.engine_state or found.phase.lower()
            reason = f"container {state}, exit code {found.exit_code}"
            if found.displaced:
                where = f" on {found.node}" if found.node else ""
                reason = f"pusher lost{where}: its node is down or drained ({state})"
            corrections.append(
                Correction("dead", camera_id, found.ref, view.generation, reason, found.displaced)
            )
    for camera_id, live in sorted(snapshot.watched.items()):
        view = snapshot.views.get(camera_id)
        if live > 0 and (view is None or view.state == PusherState.IDLE):
            corrections.append(Correction("start", camera_id))
    return corrections
