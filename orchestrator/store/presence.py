"""Who is connected to LiveKit, per camera, from webhooks and listings (``lua/*_event.lua``).

Webhooks are hints: duplicated (deduplicated by event id), dropped (the periodic listing in
``presence_sync`` corrects them) and reordered (each identity's sessions are versioned by
``joined_at_ms`` and sid, so the result depends only on which events arrived). A viewer counts
only while it has a live lease of the camera; a listed viewer without one is a ghost.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from orchestrator.domain.models import Lease
from orchestrator.errors import ScriptProtocolError
from orchestrator.store import keys
from orchestrator.store.clock import server_ms
from orchestrator.store.errors import translated
from orchestrator.store.reservations import GC_SLACK_MS
from orchestrator.store.scripts import Scripts, check

# Event ids are remembered a little longer than the oldest webhook token we accept.
DEDUPE_WINDOW_MS = 15 * 60 * 1000
NS_DIGITS = 20


def session_version(joined_at_ms: int, sid: str) -> str:
    """Sessions of one identity compare by this string: join time first, then sid."""
    return f"{max(joined_at_ms, 0):015d}|{sid}"


@dataclass(frozen=True, slots=True)
class ListedViewer:
    reservation_id: str
    sid: str
    version: str


@dataclass(frozen=True, slots=True)
class SyncResult:
    joined: int
    left: int
    ghosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PresencePolicy:
    lease_ms: int
    reconnect_grace_ms: int


class PresenceStore:
    def __init__(
        self, client: Redis, scripts: Scripts, policy: PresencePolicy, *, clock_offset_ms: int = 0
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._policy = policy
        self.clock_offset_ms = clock_offset_ms

    async def viewer_event(
        self,
        event_id: str,
        lease: Lease,
        *,
        joined: bool,
        sid: str,
        version: str,
        ends_viewing: bool,
    ) -> tuple[str, int]:
        """Apply one viewer webhook; returns the outcome and the lease's expiry (ms)."""
        reply = await self._scripts.viewer_event(
            [
                keys.webhook_event(event_id),
                keys.reservation(lease.reservation_id),
                keys.presence(lease.camera_id),
                keys.source_leases(lease.source),
                keys.camera_leases(lease.camera_id),
                keys.ALL_LEASES,
            ],
            [
                self.clock_offset_ms,
                "joined" if joined else "left",
                lease.member,
                lease.reservation_id,
                sid,
                version,
                int(ends_viewing),
                self._policy.reconnect_grace_ms,
                self._policy.lease_ms,
                DEDUPE_WINDOW_MS,
                GC_SLACK_MS,
            ],
        )
        outcome, expires = check("viewer_event", reply)
        return str(outcome), int(expires)

    async def publisher_event(
        self, event_id: str, camera_id: str, *, joined: bool, sid: str, version: str
    ) -> str:
        reply = await self._scripts.publisher_event(
            [keys.webhook_event(event_id), keys.metadata(camera_id)],
            [self.clock_offset_ms, "joined" if joined else "left", sid, version, DEDUPE_WINDOW_MS],
        )
        return str(check("publisher_event", reply)[0])

    async def server_ms(self) -> int:
        """The server clock (with the test offset): listings are stamped with it."""
        return await server_ms(self._client, self.clock_offset_ms)

    async def tracked_cameras(self) -> set[str]:
        """Active cameras with a viewer or publisher recorded as connected."""
        async with translated():
            cameras = sorted(str(c) for c in await self._client.smembers(keys.ACTIVE_CAMERAS))
            async with self._client.pipeline(transaction=False) as pipe:
                for camera_id in cameras:
                    pipe.scard(keys.presence(camera_id))
                    pipe.hexists(keys.metadata(camera_id), "pub_sid")
                rows = await pipe.execute()
        return {c for i, c in enumerate(cameras) if rows[2 * i] or rows[2 * i + 1]}

    async def present(self, camera_id: str) -> set[str]:
        async with translated():
            members = await self._client.smembers(keys.presence(camera_id))
        return {str(m) for m in members}

    async def sync(
        self,
        camera_id: str,
        *,
        listed_at_ms: int,
        viewers: list[ListedViewer],
        publisher: tuple[str, str] | None,
        present: set[str],
    ) -> SyncResult:
        """Make the camera's presence agree with a listing taken at ``listed_at_ms``."""
        listed = {v.reservation_id for v in viewers}
        absent = sorted(present - listed)
        script_keys = [keys.presence(camera_id), keys.metadata(camera_id), keys.ALL_LEASES]
        script_keys += [keys.reservation(v.reservation_id) for v in viewers]
        script_keys += [keys.reservation(rid) for rid in absent]
        args: list[str | int] = [
            self.clock_offset_ms,
            listed_at_ms,
            camera_id,
            len(viewers),
            *(publisher or ("", "")),
        ]
        for v in viewers:
            args += [v.reservation_id, v.sid, v.version]
        args += absent
        reply = check("presence_sync", await self._scripts.presence_sync(script_keys, args))
        if len(reply) < 2:
            raise ScriptProtocolError(f"presence_sync answered {reply!r}")
        return SyncResult(int(reply[0]), int(reply[1]), tuple(str(r) for r in reply[2:]))
