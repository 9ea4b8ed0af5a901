"""WHIP ingresses as the Ingress Twirp service keeps them.

Only WHIP_INPUT is supported. CreateIngress validates as the server does (participant identity
required, encoding options only with transcoding, WHIP defaults to no transcoding) and leaves
the state ENDPOINT_INACTIVE. The state machine of a publish lives in `sessions.py`; DeleteIngress
stops the ingress's sessions through `on_delete` and sends no `ingress_ended`.
"""

from __future__ import annotations

from collections.abc import Callable

from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInfo,
    IngressInput,
    IngressState,
    ListIngressRequest,
)
from livekit.protocol.models import ParticipantInfo, ParticipantPermission, TrackSource, TrackType

from .errors import TwirpFailure, WhipFailure
from .ids import INGRESS, PARTICIPANT, TRACK, new_id
from .room_table import INGRESS_ID_ATTRIBUTE


class IngressStore:
    def __init__(self, whip_url: Callable[[], str]) -> None:
        self._whip_url = whip_url
        self._items: dict[str, IngressInfo] = {}
        self.on_delete: Callable[[str], None] | None = None  # stops the ingress's sessions

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
        return copy_info(info)

    def list_ingress(self, req: ListIngressRequest) -> list[IngressInfo]:
        if req.ingress_id:
            return [self.get(req.ingress_id)]
        return [
            copy_info(i)
            for i in self._items.values()
            if not req.room_name or i.room_name == req.room_name
        ]

    def get(self, ingress_id: str) -> IngressInfo:
        if ingress_id not in self._items:
            raise TwirpFailure("not_found", "ingress does not exist")
        return copy_info(self._items[ingress_id])

    def delete(self, ingress_id: str) -> IngressInfo:
        """Stop the active or buffering session, then delete; no ingress_ended."""
        info = self.get(ingress_id)
        del self._items[ingress_id]
        if self.on_delete is not None:
            self.on_delete(ingress_id)
        info.state.status = IngressState.ENDPOINT_INACTIVE
        return info

    def all(self) -> list[IngressInfo]:
        return [copy_info(i) for i in self._items.values()]

    # ---- for the WHIP sessions -----------------------------------------------------------
    def stored(self, ingress_id: str) -> IngressInfo | None:
        """The stored record itself (not a copy), or None once deleted."""
        return self._items.get(ingress_id)

    def publishable(self, stream_key: str) -> IngressInfo:
        """The ingress a WHIP POST with `stream_key` publishes to (an active one too)."""
        info = next((i for i in self._items.values() if i.stream_key == stream_key), None)
        if info is None or not stream_key:
            raise WhipFailure(404, "ingress not found")
        if info.HasField("enabled") and not info.enabled:
            raise WhipFailure(403, "session is disabled")
        if not info.room_name:
            raise WhipFailure(400, "invalid ingress: no room name")
        return copy_info(info)


def copy_info(info: IngressInfo) -> IngressInfo:
    out = IngressInfo()
    out.CopyFrom(info)
    return out


def ingress_participant(info: IngressInfo, now: float) -> ParticipantInfo:
    """The ingress's participant (`protocol/ingress/token.go`) with one video track."""
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
            can_publish=True, can_subscribe=False, can_publish_data=True, can_update_metadata=True
        ),
    )
    participant.attributes[INGRESS_ID_ATTRIBUTE] = info.ingress_id
    participant.tracks.add(
        sid=new_id(TRACK), type=TrackType.VIDEO, source=TrackSource.CAMERA,
        mime_type="video/H264", width=1280, height=720,
    )  # fmt: skip
    return participant
