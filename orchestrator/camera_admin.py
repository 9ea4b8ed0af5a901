"""The camera registry as the admin API changes it: a camera that is deleted or disabled
stops being watched at once.

The registry write is atomic, and ``reserve`` and ``heartbeat`` read the camera inside their
scripts, so once it lands no lease of the camera is created or renewed and no token is minted
for it. Then every lease the camera still has ends through ``release`` (counters and pusher
state move as for a dashboard release) and the pusher stops without waiting for the drain
grace (``pusher_stop`` forced, then the fenced removal). Viewers still connected to the room
hold no lease any more: the LiveKit pass removes them as ghosts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.domain.models import Camera
from orchestrator.pusher.lifecycle import Lifecycle
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.reservations import ReservationStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ended:
    camera_id: str
    released: int
    pusher_stopping: bool


class CameraAdmin:
    def __init__(
        self,
        registry: CameraRegistry,
        leases: ReservationStore,
        lifecycle: Lifecycle | None,
    ) -> None:
        self.registry = registry
        self._leases = leases
        self._lifecycle = lifecycle

    async def put(self, camera: Camera) -> bool:
        """Create or replace ``camera`` (True when new); disabling it ends its viewing."""
        created = await self.registry.put(camera)
        if not camera.enabled:
            await self.end_viewing(camera.camera_id)
        return created

    async def delete(self, camera_id: str) -> bool:
        """Remove the camera (False when unknown) and end its viewing."""
        deleted = await self.registry.delete(camera_id)
        if deleted:
            await self.end_viewing(camera_id)
        return deleted

    async def end_viewing(self, camera_id: str) -> Ended:
        released = 0
        for lease in await self._leases.leases_of_camera(camera_id):
            released += (await self._leases.release_lease(lease)).released
        stopping = False
        if self._lifecycle is not None:
            lifecycle = self._lifecycle
            generation = await lifecycle.pushers.begin_stop(camera_id, force=True)
            if generation is not None:  # won the stop: run it behind the answer
                stopping = True
                lifecycle.spawn(camera_id, lifecycle.stop(camera_id, generation))
        if released or stopping:
            log.info(
                "camera viewing ended",
                extra={"camera_id": camera_id, "released": released, "pusher_stopping": stopping},
            )
        return Ended(camera_id, released, stopping)
