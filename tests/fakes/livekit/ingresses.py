"""WHIP ingresses and their sessions (livekit-wire.md §2.4, §5.3, §6).

A publish (WHIP POST) goes straight to ENDPOINT_PUBLISHING, as a WHIP ingress without
transcoding does, and brings in the INGRESS participant; the end of the session sets
ENDPOINT_INACTIVE (reusable ingress) or ENDPOINT_ERROR. Only WHIP_INPUT is supported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInfo,
    IngressInput,
    IngressState,
    ListIngressRequest,
)
from livekit.protocol.models import (
    DisconnectReason,
    ParticipantInfo,
    ParticipantPermission,
    Room,
    TrackSource,
    TrackType,
)

from .errors import TwirpFailure, WhipFailure
from .events import INGRESS_ENDED, INGRESS_STARTED, Clock, EventBus
from .ids import INGRESS, PARTICIPANT, TRACK, WHIP_RESOURCE, new_id
from .rooms import INGRESS_ID_ATTRIBUTE, RoomStore


@dataclass
class WhipSession:
    resource_id: str
    ingress_id: str
    stream_key: str
    room: str
    participant_sid: str
    upstream_location: str | None = None


class IngressStore:
    def __init__(
        self, rooms: RoomStore, bus: EventBus, clock: Clock, whip_url: Callable[[], str]
    ) -> None:
        self._rooms = rooms
        self._bus = bus
        self._clock = clock
        self._whip_url = whip_url
        self._items: dict[str, IngressInfo] = {}
        self.sessions: dict[str, WhipSession] = {}
        rooms.on_ingress_removed = self._participant_removed

    # ---- Twirp ---------------------------------------------------------------------------
    def create(self, req: CreateIngressRequest) -> IngressInfo:
        if req.input_type in (IngressInput.RTMP_INPUT, IngressInput.URL_INPUT):
            raise TwirpFailure("unimplemented", "the fake LiveKit supports WHIP_INPUT only")
        if req.input_type != IngressInput.WHIP_INPUT:
            raise TwirpFailure("invalid_argument", "invalid ingress type")
        if not req.participant_identity:
            raise TwirpFailure("invalid_argument", "invalid ingress: no participant identity")
        transcode = req.enable_transcoding if req.HasField("enable_transcoding") else False
        encoded = any(o.WhichOneof("encoding_options") is not None for o in (req.audio, req.video))
        if encoded and not transcode:
            raise TwirpFailure(
                "invalid_argument", "invalid ingress: encoding options require transcoding"
            )
        info = IngressInfo(
            ingress_id=new_id(INGRESS),
            name=req.name,
            stream_key=new_id(),
            url=self._whip_url(),
            input_type=req.input_type,
            bypass_transcoding=not transcode,
            enable_transcoding=transcode,
            room_name=req.room_name,
            participant_identity=req.participant_identity,
            participant_name=req.participant_name,
            participant_metadata=req.participant_metadata,
            reusable=True,
        )
        if req.HasField("audio"):
            info.audio.CopyFrom(req.audio)
        if req.HasField("video"):
            info.video.CopyFrom(req.video)
        if req.HasField("enabled"):
            info.enabled = req.enabled
        info.state.SetInParent()
        self._items[info.ingress_id] = info
        return _copy(info)

    def list_ingress(self, req: ListIngressRequest) -> list[IngressInfo]:
        if req.ingress_id:
            return [self.get(req.ingress_id)]
        return [
            _copy(i)
            for i in self._items.values()
            if not req.room_name or i.room_name == req.room_name
        ]

    def get(self, ingress_id: str) -> IngressInfo:
        if ingress_id not in self._items:
            raise TwirpFailure("not_found", "ingress does not exist")
        return _copy(self._items[ingress_id])

    def delete(self, ingress_id: str) -> IngressInfo:
        """Stop an active session, then delete; no ingress_ended (a race upstream, §5.3)."""
        info = self.get(ingress_id)
        del self._items[ingress_id]
        session = self.session_of(ingress_id)
        if session is not None:
            self._finish(session, IngressState.ENDPOINT_INACTIVE)
        info.state.status = IngressState.ENDPOINT_INACTIVE
        return info

    # ---- WHIP sessions -------------------------------------------------------------------
    def session_of(self, ingress_id: str) -> WhipSession | None:
        return next((s for s in self.sessions.values() if s.ingress_id == ingress_id), None)

    def publishable(self, stream_key: str) -> IngressInfo:
        info = next((i for i in self._items.values() if i.stream_key == stream_key), None)
        if info is None or not stream_key:
            raise WhipFailure(404, "ingress not found")
        if info.HasField("enabled") and not info.enabled:
            raise WhipFailure(403, "session is disabled")
        if not info.room_name:
            raise WhipFailure(400, "invalid ingress: no room name")
        if self.session_of(info.ingress_id) is not None:
            raise WhipFailure(409, "ingress already active")  # the fake's choice
        return _copy(info)

    def start(self, ingress_id: str, upstream_location: str | None = None) -> WhipSession:
        info = self._items[ingress_id]
        now = self._clock()
        participant = ParticipantInfo(
            sid=new_id(PARTICIPANT),
            identity=info.participant_identity,
            name=info.participant_name,
            metadata=info.participant_metadata,
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
            version=1,
            is_publisher=True,
            kind=ParticipantInfo.Kind.INGRESS,
            permission=ParticipantPermission(
                can_publish=True, can_subscribe=False, can_publish_data=True,
                can_update_metadata=True,
            ),
        )  # fmt: skip
        participant.attributes[INGRESS_ID_ATTRIBUTE] = ingress_id
        participant.tracks.add(
            sid=new_id(TRACK), type=TrackType.VIDEO, source=TrackSource.CAMERA,
            mime_type="video/H264", width=1280, height=720,
        )  # fmt: skip
        session = WhipSession(
            new_id(WHIP_RESOURCE),
            ingress_id,
            info.stream_key,
            info.room_name,
            participant.sid,
            upstream_location,
        )
        self.sessions[session.resource_id] = session
        self._rooms.add(info.room_name, participant)
        nanos = int(now * 1e9)
        info.state.CopyFrom(
            IngressState(
                status=IngressState.ENDPOINT_PUBLISHING,
                room_id=self._rooms.snapshot(info.room_name).sid,
                started_at=nanos,
                updated_at=nanos,
                resource_id=session.resource_id,
            )
        )
        self._bus.emit(INGRESS_STARTED, room=Room(name=info.room_name), ingress_info=_copy(info))
        return session

    def end(self, stream_key: str, resource_id: str) -> WhipSession:
        session = self.sessions.get(resource_id)
        if session is None or session.stream_key != stream_key:
            raise WhipFailure(404, "ingress not found")
        self._finish(session, IngressState.ENDPOINT_INACTIVE)
        return session

    def fail(self, ingress_id: str, error: str) -> None:
        session = self.session_of(ingress_id)
        if session is None:
            raise KeyError(f"ingress {ingress_id} has no active WHIP session")
        self._finish(session, IngressState.ENDPOINT_ERROR, error=error)

    def _participant_removed(self, ingress_id: str, reason: DisconnectReason) -> None:
        session = self.session_of(ingress_id)
        if session is not None:
            self._finish(session, IngressState.ENDPOINT_INACTIVE, in_room=False)

    def _finish(
        self,
        session: WhipSession,
        status: IngressState.Status,
        *,
        error: str = "",
        in_room: bool = True,
    ) -> None:
        del self.sessions[session.resource_id]
        if in_room and session.room in self._rooms.names():
            current = {p.identity: p.sid for p in self._rooms.participants(session.room)}
            identity = next((i for i, s in current.items() if s == session.participant_sid), None)
            if identity is not None:
                self._rooms.remove(
                    session.room, identity, DisconnectReason.CLIENT_INITIATED, notify_ingress=False
                )
        info = self._items.get(session.ingress_id)
        if info is None:
            return
        nanos = int(self._clock() * 1e9)
        info.state.status = status
        info.state.error = error
        info.state.ended_at = nanos
        info.state.updated_at = nanos
        self._bus.emit(INGRESS_ENDED, room=Room(name=info.room_name), ingress_info=_copy(info))

    def all(self) -> list[IngressInfo]:
        return [_copy(i) for i in self._items.values()]


def _copy(info: IngressInfo) -> IngressInfo:
    out = IngressInfo()
    out.CopyFrom(info)
    return out
