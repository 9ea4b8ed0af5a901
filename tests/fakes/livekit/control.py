"""The fake's test-control API (Python methods on `FakeLiveKit`; nothing here is on the wire).

Simulated clients: `join` (straight to ACTIVE), `begin_join` / `activate` / `abort_join` (a
viewer that is JOINING, then connects or never does), `leave`. Store-only participants:
`ghost` / `remove_ghost`. Ingress: `fail_next_publish` (ERROR "source encoder not
ready" instead of PUBLISHING), `fail_ingress`, `settle`. Twirp faults: `fail_rpc`.
Timing: `publish_delay_seconds`, `no_response_seconds`; `create_room_overwrites_live` brings
back the old CreateRoom overwrite of a live room's settings.
"""

from __future__ import annotations

import asyncio

from livekit.protocol.models import DisconnectReason, ParticipantInfo, ParticipantPermission

from .auth import participant_from, room_request, verify_join
from .events import Clock
from .faults import RpcFaults, Timing
from .ids import PARTICIPANT, new_id
from .ingresses import IngressStore, ingress_participant
from .rooms import RoomStore
from .sessions import SOURCE_NOT_READY, WhipSessions
from .whip import WhipEndpoints

Kind = ParticipantInfo.Kind


class Controls:
    api_key: str
    api_secret: str
    _clock: Clock
    _timing: Timing
    _faults: RpcFaults
    _rooms: RoomStore
    _ingresses: IngressStore
    _sessions: WhipSessions
    _whip: WhipEndpoints

    # ---- knobs -----------------------------------------------------------------------------
    @property
    def publish_delay_seconds(self) -> float:
        """BUFFERING -> PUBLISHING delay of a WHIP publish; 0 publishes inside the POST."""
        return self._timing.publish_delay_seconds

    @publish_delay_seconds.setter
    def publish_delay_seconds(self, value: float) -> None:
        self._timing.publish_delay_seconds = value

    @property
    def no_response_seconds(self) -> float:
        """The psrpc timeout before an unclaimed RPC answers (unknown WHIP DELETE/PATCH,
        RemoveParticipant of a ghost)."""
        return self._timing.no_response_seconds

    @no_response_seconds.setter
    def no_response_seconds(self, value: float) -> None:
        self._timing.no_response_seconds = value

    @property
    def create_room_overwrites_live(self) -> bool:
        """True: CreateRoom overwrites a live room's timeouts (the fake's old, unfaithful way)."""
        return self._rooms.create_overwrites_live

    @create_room_overwrites_live.setter
    def create_room_overwrites_live(self, value: bool) -> None:
        self._rooms.create_overwrites_live = value

    # ---- simulated clients -----------------------------------------------------------------
    def join(self, token: str) -> ParticipantInfo:
        """A client connects with `token` and goes ACTIVE (raises `JoinRejected`).

        An identity already in the room is evicted first: participant_left (old sid,
        DUPLICATE_IDENTITY), then participant_joined (new sid), as LiveKit does.
        """
        claims = verify_join(token, self.api_key, self.api_secret)
        participant = participant_from(claims, self._clock())
        room, create = str(claims.video["room"]), room_request(claims)
        return self._rooms.add(room, participant, create=create)

    def begin_join(self, token: str) -> ParticipantInfo:
        """A client signal-joins with `token` but its media is not connected yet: JOINING,
        listed by ListParticipants, no participant_joined (a duplicate is evicted now)."""
        claims = verify_join(token, self.api_key, self.api_secret)
        participant = participant_from(claims, self._clock())
        room, create = str(claims.video["room"]), room_request(claims)
        return self._rooms.add(room, participant, active=False, create=create)

    def activate(self, room: str, identity: str) -> ParticipantInfo:
        """The JOINING participant's media connects: ACTIVE, then participant_joined."""
        return self._rooms.activate(room, identity)

    def abort_join(
        self, room: str, identity: str, reason: DisconnectReason = DisconnectReason.JOIN_FAILURE
    ) -> ParticipantInfo:
        """The JOINING participant never connects: participant_connection_aborted."""
        if self._rooms.get(room, identity).state != ParticipantInfo.State.JOINING:
            raise ValueError(f"{identity} in {room} is not JOINING")
        return self._rooms.remove(room, identity, reason)

    def leave(
        self,
        room: str,
        identity: str,
        reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED,
    ) -> ParticipantInfo:
        """The client disconnects (raises `TwirpFailure` not_found if it is not there);
        participant_left, or participant_connection_aborted if it was still JOINING."""
        if self._rooms.is_ghost(room, identity):
            raise ValueError(f"{identity} in {room} is a ghost: no client to leave")
        return self._rooms.remove(room, identity, reason)

    # ---- store-only participants ----------------------------------------------------
    def ghost(
        self,
        room: str,
        identity: str,
        kind: ParticipantInfo.Kind = Kind.STANDARD,
        *,
        name: str = "",
    ) -> ParticipantInfo:
        """A participant record left in the store by an unclean server stop: listed ACTIVE,
        no webhook, RemoveParticipant answers 503 `unavailable` after `no_response_seconds`.

        An INGRESS ghost carries the `ingress.ingressID` of the ingress with that identity in
        that room, if any; the ingress's own state is left as it is.
        """
        now = self._clock()
        participant = ParticipantInfo(
            sid=new_id(PARTICIPANT), identity=identity, name=name, kind=kind, version=1,
            joined_at=int(now), joined_at_ms=int(now * 1000),
            permission=ParticipantPermission(can_subscribe=True),
        )  # fmt: skip
        if kind == Kind.INGRESS:
            owner = next(
                (i for i in self._ingresses.all()
                 if i.participant_identity == identity and i.room_name == room),
                None,
            )  # fmt: skip
            if owner is not None:
                participant = ingress_participant(owner, now)
                participant.name = name or participant.name
        return self._rooms.ghost(room, participant)

    def remove_ghost(self, room: str, identity: str) -> None:
        """The stale record disappears from the store (no webhook)."""
        self._rooms.remove_ghost(room, identity)

    # ---- ingress ---------------------------------------------------------------------------
    def fail_ingress(self, ingress_id: str, error: str = "pipeline failed") -> None:
        """The current (buffering or publishing) WHIP session of `ingress_id` dies:
        ENDPOINT_ERROR + ingress_ended, its participant leaves, its upstream is DELETEd."""
        self._sessions.fail(ingress_id, error)

    def fail_next_publish(
        self, ingress_id: str | None = None, *, times: int = 1, error: str = SOURCE_NOT_READY
    ) -> None:
        """The next `times` WHIP POSTs (of `ingress_id`, or of any ingress) answer 201 but end
        in ENDPOINT_ERROR `error` + ingress_ended after the publish delay, never PUBLISHING.
        `times=0` clears the rule; a rule for an ingress wins over the any-ingress rule."""
        self._sessions.fail_next(ingress_id, times, error)

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until no WHIP publish is pending and every upstream teardown was sent."""
        await self._sessions.settle(timeout)
        async with asyncio.timeout(timeout):
            await self._whip.drain()

    def close_idle_rooms(self, now: float | None = None) -> list[str]:
        """Close rooms past their empty/departure timeout (the real server checks every 1 s)."""
        return self._rooms.close_idle(now)

    # ---- Twirp faults ---------------------------------------------------------------
    def fail_rpc(
        self,
        method: str,
        code: str = "deadline_exceeded",
        *,
        times: int = 1,
        msg: str | None = None,
        after: bool = False,
    ) -> None:
        """The next `times` calls of `method` ("RemoveParticipant" or the full
        "livekit.RoomService/RemoveParticipant") answer the Twirp error `code` with its
        status (deadline_exceeded 408, unavailable 503, resource_exhausted 429...).
        `after=True` runs the call first (it takes effect; the client still sees the error)."""
        self._faults.add(method, code, times, msg, after)

    @property
    def rpc_faults_fired(self) -> list[tuple[str, str]]:
        """(method path, code) of every scripted fault answered so far."""
        return list(self._faults.fired)
