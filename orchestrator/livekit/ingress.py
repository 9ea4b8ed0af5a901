"""Each camera's one reusable WHIP ingress and room.

The ingress (name and identity ``camera_<id>_publisher``, room ``camera_<id>``, transcoding
off) is created at the camera's first start and its id kept in ``stream:metadata:<id>``;
every later start reuses it and it is re-created only when LiveKit no longer has it
(creating and deleting WHIP ingresses repeatedly leaks resources in LiveKit's ingress
service). The pusher gets the ingress's WHIP URL and stream key (as a Bearer token). The
stream key is read from LiveKit at each start and never stored, logged or shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from livekit.protocol.ingress import IngressInfo

from orchestrator.domain.ids import publisher_identity, room_name
from orchestrator.errors import LiveKitUnavailable
from orchestrator.livekit.gateway import LiveKitGateway
from orchestrator.pusher.spec_factory import WhipTarget
from orchestrator.store.ingresses import IngressRecords

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    empty_timeout_seconds: int
    departure_timeout_seconds: int


class IngressManager:
    def __init__(self, gateway: LiveKitGateway, records: IngressRecords, rooms: RoomPolicy) -> None:
        self._gateway = gateway
        self._records = records
        self._rooms = rooms

    async def whip_target(self, camera_id: str) -> WhipTarget:
        """Make sure the room and the ingress exist; where the pusher publishes."""
        await self._gateway.ensure_room(
            room_name(camera_id),
            empty_timeout=self._rooms.empty_timeout_seconds,
            departure_timeout=self._rooms.departure_timeout_seconds,
        )
        info = await self.ensure(camera_id)
        return WhipTarget(info.url, info.stream_key)

    async def ensure(self, camera_id: str) -> IngressInfo:
        bound = await self._records.ingress_id(camera_id)
        if bound is not None:
            info = await self._gateway.get_ingress(bound)
            if info is not None and _ours(info, camera_id):
                return info
            log.warning(
                "camera ingress is gone from LiveKit; re-creating it",
                extra={"camera_id": camera_id, "ingress_id": bound},
            )
        # One of ours may exist unbound (a start that died between create and bind): adopt it.
        existing = await self._gateway.list_ingresses(room_name(camera_id))
        adopted = next((i for i in existing if _ours(i, camera_id)), None)
        info = adopted or await self._create(camera_id)
        kept = await self._records.bind_ingress(
            camera_id, expected=bound, ingress_id=info.ingress_id
        )
        if kept == info.ingress_id:
            return info
        # Another replica bound its own ingress first: use that one, drop ours.
        if adopted is None:
            await self._gateway.delete_ingress(info.ingress_id)
        winner = await self._gateway.get_ingress(kept)
        if winner is None:
            raise LiveKitUnavailable(f"camera {camera_id}: the bound ingress vanished; retrying")
        return winner

    async def _create(self, camera_id: str) -> IngressInfo:
        identity = publisher_identity(camera_id)
        info = await self._gateway.create_whip_ingress(
            name=identity, room_name=room_name(camera_id), identity=identity
        )
        log.info(
            "camera ingress created", extra={"camera_id": camera_id, "ingress_id": info.ingress_id}
        )
        return info


def _ours(info: IngressInfo, camera_id: str) -> bool:
    identity = publisher_identity(camera_id)
    return (
        info.name == identity
        and info.participant_identity == identity
        and info.room_name == room_name(camera_id)
    )
