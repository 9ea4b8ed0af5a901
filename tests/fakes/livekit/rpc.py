"""The RPC table: request class, grant check and semantics of each supported method.

Grants as the real server checks them: roomCreate (CreateRoom, DeleteRoom), roomList
(ListRooms), roomAdmin + matching room (participant RPCs), ingressAdmin (Ingress RPCs).
Semantics are the real server's (docs/architecture.md, "LiveKit facts"): CreateRoom leaves a
live room as it is, RemoveParticipant of a store-only participant answers 503 `unavailable`,
ListParticipants lists JOINING
participants. Scripted 408/503 answers come from `faults.RpcFaults`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    ListIngressRequest,
    ListIngressResponse,
)
from livekit.protocol.models import DisconnectReason
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    DeleteRoomResponse,
    ListParticipantsRequest,
    ListParticipantsResponse,
    ListRoomsRequest,
    ListRoomsResponse,
    RemoveParticipantResponse,
    RoomParticipantIdentity,
)

from .auth import Claims, require, require_room_admin
from .ingresses import IngressStore
from .rooms import RoomStore

ROOM_SERVICE = "livekit.RoomService"
INGRESS_SERVICE = "livekit.Ingress"

# Methods the real services have that the fake answers with `unimplemented`.
UNIMPLEMENTED = frozenset(
    [f"{ROOM_SERVICE}/{m}" for m in (
        "UpdateRoomMetadata", "MutePublishedTrack", "UpdateParticipant", "UpdateSubscriptions",
        "SendData", "ForwardParticipant", "MoveParticipant", "PerformRpc",
    )] + [f"{INGRESS_SERVICE}/UpdateIngress"]
)  # fmt: skip


@dataclass(frozen=True)
class Rpc:
    request: type[Message]
    call: Callable[[Claims, Any], Message]


def build_rpcs(rooms: RoomStore, ingresses: IngressStore) -> dict[str, Rpc]:
    """Map `livekit.<Service>/<Method>` to its handler."""

    def create_room(claims: Claims, req: CreateRoomRequest) -> Message:
        require(claims, "roomCreate")
        return rooms.create(req)

    def list_rooms(claims: Claims, req: ListRoomsRequest) -> Message:
        require(claims, "roomList")
        return ListRoomsResponse(rooms=rooms.list_rooms(req.names))

    def delete_room(claims: Claims, req: DeleteRoomRequest) -> Message:
        require(claims, "roomCreate")
        rooms.delete(req.room)
        return DeleteRoomResponse()

    def list_participants(claims: Claims, req: ListParticipantsRequest) -> Message:
        require_room_admin(claims, req.room)
        return ListParticipantsResponse(participants=rooms.participants(req.room))

    def get_participant(claims: Claims, req: RoomParticipantIdentity) -> Message:
        require_room_admin(claims, req.room)
        return rooms.get(req.room, req.identity)

    def remove_participant(claims: Claims, req: RoomParticipantIdentity) -> Message:
        require_room_admin(claims, req.room)
        rooms.remove(req.room, req.identity, DisconnectReason.PARTICIPANT_REMOVED)
        return RemoveParticipantResponse()

    def create_ingress(claims: Claims, req: CreateIngressRequest) -> Message:
        require(claims, "ingressAdmin")
        return ingresses.create(req)

    def list_ingress(claims: Claims, req: ListIngressRequest) -> Message:
        require(claims, "ingressAdmin")
        return ListIngressResponse(items=ingresses.list_ingress(req))

    def delete_ingress(claims: Claims, req: DeleteIngressRequest) -> Message:
        require(claims, "ingressAdmin")
        return ingresses.delete(req.ingress_id)

    return {
        f"{ROOM_SERVICE}/CreateRoom": Rpc(CreateRoomRequest, create_room),
        f"{ROOM_SERVICE}/ListRooms": Rpc(ListRoomsRequest, list_rooms),
        f"{ROOM_SERVICE}/DeleteRoom": Rpc(DeleteRoomRequest, delete_room),
        f"{ROOM_SERVICE}/ListParticipants": Rpc(ListParticipantsRequest, list_participants),
        f"{ROOM_SERVICE}/GetParticipant": Rpc(RoomParticipantIdentity, get_participant),
        f"{ROOM_SERVICE}/RemoveParticipant": Rpc(RoomParticipantIdentity, remove_participant),
        f"{INGRESS_SERVICE}/CreateIngress": Rpc(CreateIngressRequest, create_ingress),
        f"{INGRESS_SERVICE}/ListIngress": Rpc(ListIngressRequest, list_ingress),
        f"{INGRESS_SERVICE}/DeleteIngress": Rpc(DeleteIngressRequest, delete_ingress),
    }
