"""WHIP sessions of an ingress without transcoding.

* A WHIP POST answers 201 at once and puts the ingress in ENDPOINT_BUFFERING (new `started_at`
  and `resource_id`, no webhook). After `Timing.publish_delay_seconds` (the real ingress waits
  for RTP on every m-line, up to 10 s) it goes ENDPOINT_PUBLISHING with `ingress_started`, then
  the INGRESS participant joins (`participant_joined`). A delay of 0 publishes inside the POST.
* A publish marked by `fail_next` instead goes ENDPOINT_ERROR "source encoder not ready" with
  `ingress_ended`, and its session ends: the resource is gone and an upstream session is
  DELETEd. A session whose client DELETEd it while still buffering ends the same way (the real
  handler is closed before any track arrived and times out).
* A second POST on an active ingress is accepted. The older session keeps publishing
  until the new one publishes: the new participant's join evicts the old one
  (`participant_left` DUPLICATE_IDENTITY, then `participant_joined`) and the old session ends
  without any ingress state change (an older `started_at` never overwrites a newer one,
  `redisstore.go` storeIngressState). A POST that is superseded while buffering ends silently.
* Client DELETE of the current session: ENDPOINT_INACTIVE + `ingress_ended`, the participant
  leaves. The INGRESS participant removed by the server (RemoveParticipant, DeleteRoom, idle
  close): ENDPOINT_INACTIVE + `ingress_ended`. `fail`: ENDPOINT_ERROR with the given error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import DisconnectReason, Room

from .errors import WhipFailure
from .events import INGRESS_ENDED, INGRESS_STARTED, Clock, EventBus
from .faults import Timing
from .ids import WHIP_RESOURCE, new_id
from .ingresses import IngressStore, copy_info, ingress_participant
from .rooms import RoomStore

SOURCE_NOT_READY = "source encoder not ready"  # ingress errors.ErrSourceNotReady
_ACTIVE = (IngressState.ENDPOINT_BUFFERING, IngressState.ENDPOINT_PUBLISHING)
log = logging.getLogger(__name__)


@dataclass
class WhipSession:
    resource_id: str
    ingress_id: str
    stream_key: str
    room: str
    participant_sid: str = ""  # set once it publishes
    upstream_location: str | None = None
    started_at: int = 0  # nanoseconds
    fail_with: str | None = None


@dataclass
class _Failure:
    ingress_id: str | None
    remaining: int
    error: str


class WhipSessions:
    def __init__(
        self, rooms: RoomStore, ingresses: IngressStore, bus: EventBus, clock: Clock, timing: Timing
    ) -> None:
        self._rooms = rooms
        self._ingresses = ingresses
        self._bus = bus
        self._clock = clock
        self._timing = timing
        self.sessions: dict[str, WhipSession] = {}  # resources that answer DELETE
        self._pending: dict[str, asyncio.Task[None]] = {}  # resource_id -> publish timer
        self._failures: list[_Failure] = []
        # A session ended by the server side: delete its upstream session (set by the WHIP app).
        self.on_closed: Callable[[WhipSession], None] | None = None
        rooms.on_ingress_removed = self._participant_removed
        ingresses.on_delete = self._ingress_deleted

    # ---- knobs -----------------------------------------------------------------------------
    def fail_next(self, ingress_id: str | None, times: int, error: str) -> None:
        self._failures = [f for f in self._failures if f.ingress_id != ingress_id]
        if times > 0:
            self._failures.append(_Failure(ingress_id, times, error))

    def _take_failure(self, ingress_id: str) -> str | None:
        mine = [f for f in self._failures if f.ingress_id == ingress_id]
        rule = next(iter(mine or [f for f in self._failures if f.ingress_id is None]), None)
        if rule is None:
            return None
        rule.remaining -= 1
        self._failures = [f for f in self._failures if f.remaining > 0]
        return rule.error

    async def settle(self, timeout: float) -> None:
        """Wait until no publish is pending (every BUFFERING session resolved)."""
        async with asyncio.timeout(timeout):
            while self._pending:
                await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._pending.values())
        self._pending.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- the WHIP endpoints ----------------------------------------------------------------
    def start(self, ingress_id: str, upstream_location: str | None = None) -> WhipSession:
        """A POST was accepted: ENDPOINT_BUFFERING now, the publish after the delay."""
        info = self._ingresses.stored(ingress_id)
        if info is None:
            raise WhipFailure(404, "ingress not found")
        nanos = int(self._clock() * 1e9)
        session = WhipSession(
            new_id(WHIP_RESOURCE),
            ingress_id,
            info.stream_key,
            info.room_name,
            upstream_location=upstream_location,
            started_at=nanos,
            fail_with=self._take_failure(ingress_id),
        )
        self.sessions[session.resource_id] = session
        info.state.CopyFrom(
            IngressState(
                status=IngressState.ENDPOINT_BUFFERING,
                started_at=nanos,
                updated_at=nanos,
                resource_id=session.resource_id,
            )
        )
        delay = self._timing.publish_delay_seconds
        if delay <= 0:
            self._resolve(session)
        else:
            timer = asyncio.get_running_loop().create_task(self._after(delay, session))
            self._pending[session.resource_id] = timer
        return session

    def end(self, stream_key: str, resource_id: str) -> WhipSession:
        """Client DELETE (the caller answers an unknown resource's 404 after the psrpc delay)."""
        session = self.sessions.pop(resource_id, None)
        if session is None:
            raise WhipFailure(404, "ingress not found")
        if stream_key != session.stream_key:  # only logged by the real server
            log.info("received delete request with wrong stream key %s", stream_key)
        if session.resource_id in self._pending:
            return session  # still buffering: the timer turns it into ENDPOINT_ERROR
        self._leave_room(session)
        info = self._current(session)
        if info is not None:
            self._set_end(info, IngressState.ENDPOINT_INACTIVE)
        return session

    def fail(self, ingress_id: str, error: str) -> None:
        """The ingress's current session dies: ENDPOINT_ERROR + ingress_ended."""
        info = self._ingresses.stored(ingress_id)
        session = self.sessions.get(info.state.resource_id) if info is not None else None
        if info is None or session is None or info.state.status not in _ACTIVE:
            raise KeyError(f"ingress {ingress_id} has no active WHIP session")
        self._close(session)
        self._leave_room(session)
        self._set_end(info, IngressState.ENDPOINT_ERROR, error)

    # ---- the state machine -----------------------------------------------------------------
    async def _after(self, delay: float, session: WhipSession) -> None:
        await asyncio.sleep(delay)
        self._pending.pop(session.resource_id, None)
        self._resolve(session)

    def _current(self, session: WhipSession) -> IngressInfo | None:
        """The stored ingress if `session` still owns its (buffering or publishing) state."""
        info = self._ingresses.stored(session.ingress_id)
        if info is None or info.state.resource_id != session.resource_id:
            return None
        return info if info.state.status in _ACTIVE else None

    def _resolve(self, session: WhipSession) -> None:
        info = self._current(session)
        if info is None:  # the ingress was deleted, or a newer POST superseded this one
            self._close(session)
            return
        error = session.fail_with
        if error is None and session.resource_id not in self.sessions:
            error = SOURCE_NOT_READY  # the client hung up before any media
        if error is not None:
            self._close(session)
            self._set_end(info, IngressState.ENDPOINT_ERROR, error)
            return
        room = self._rooms.ensure(session.room)
        info.state.status = IngressState.ENDPOINT_PUBLISHING
        info.state.updated_at = max(int(self._clock() * 1e9), info.state.started_at)
        info.state.room_id = room.info.sid
        self._bus.emit(
            INGRESS_STARTED, room=Room(name=info.room_name), ingress_info=copy_info(info)
        )
        participant = ingress_participant(info, self._clock())
        session.participant_sid = participant.sid
        self._rooms.add(session.room, participant)  # evicts an older session's participant

    def _close(self, session: WhipSession) -> None:
        """The server ends `session`: its resource is gone, its upstream session deleted."""
        timer = self._pending.pop(session.resource_id, None)
        if timer is not None:
            timer.cancel()
        if self.sessions.pop(session.resource_id, None) is None:
            return
        if session.upstream_location and self.on_closed is not None:
            self.on_closed(session)

    def _leave_room(self, session: WhipSession) -> None:
        if not session.participant_sid or session.room not in self._rooms.names():
            return
        current = {p.sid: p.identity for p in self._rooms.participants(session.room)}
        identity = current.get(session.participant_sid)
        if identity is not None:
            reason = DisconnectReason.CLIENT_INITIATED
            self._rooms.remove(session.room, identity, reason, notify_ingress=False)

    def _participant_removed(self, ingress_id: str, sid: str, reason: DisconnectReason) -> None:
        session = next((s for s in self.sessions.values() if s.participant_sid == sid), None)
        if session is None:
            return
        info = self._current(session)
        self._close(session)
        if info is not None:  # not when a newer session of the same ingress evicted it
            self._set_end(info, IngressState.ENDPOINT_INACTIVE)

    def _ingress_deleted(self, ingress_id: str) -> None:
        for session in [s for s in self.sessions.values() if s.ingress_id == ingress_id]:
            self._close(session)
            self._leave_room(session)

    def _set_end(self, info: IngressInfo, status: IngressState.Status, error: str = "") -> None:
        nanos = max(int(self._clock() * 1e9), info.state.started_at)
        info.state.status = status
        info.state.error = error
        info.state.ended_at = nanos
        info.state.updated_at = nanos
        self._bus.emit(INGRESS_ENDED, room=Room(name=info.room_name), ingress_info=copy_info(info))
