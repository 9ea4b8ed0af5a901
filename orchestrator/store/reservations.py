"""The reservation engine: leases and per-source quotas, changed only by Lua scripts.

Python builds keys (``keys``), calls one script per operation (``scripts``) and returns the
typed values of ``domain.models``. See ``docs/keyspace.md`` for what each key holds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis

from orchestrator.domain.ids import (
    TOTAL,
    new_reservation_id,
    validate_camera_id,
    validate_lease_source,
    validate_reservation_id,
    validate_source,
    viewer_identity,
)
from orchestrator.domain.models import (
    Admission,
    ExpireReport,
    Lease,
    Recount,
    Release,
    Renewal,
    ReservationInfo,
)
from orchestrator.errors import ScriptProtocolError
from orchestrator.store import keys
from orchestrator.store.clock import server_ms
from orchestrator.store.errors import translated
from orchestrator.store.scripts import Scripts, check

MAX_EXPIRE_BATCH = 500
GC_SLACK_MS = 3_600_000
MAX_TEXT = 256
ROUTE_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """Durations (ms) and default limits the scripts apply."""

    lease_ms: int = 60_000
    drain_grace_ms: int = 3_000
    claim_ms: int = 30_000
    token_ttl_ms: int = 600_000
    token_refresh_ms: int = 120_000
    default_limits: tuple[tuple[str, int], ...] = ()
    default_source_limit: int = 0

    def limit_for(self, source: str) -> int:
        return dict(self.default_limits).get(source, self.default_source_limit)


class ReservationStore:
    """Typed API over the lease scripts.

    ``clock_offset_ms`` is added to the server clock in every script. It is 0 in production;
    tests move time forward with it instead of sleeping.
    """

    def __init__(
        self,
        client: Redis,
        scripts: Scripts,
        policy: LeasePolicy,
        *,
        owner: str,
        clock_offset_ms: int = 0,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self.policy = policy
        self.owner = owner
        self.clock_offset_ms = clock_offset_ms
        # rid -> Lease for leases this process admitted. A lease's routing never changes, so
        # a hit saves the HGET round trip on heartbeat and release; misses read the hash.
        self._routes: OrderedDict[str, Lease] = OrderedDict()

    def _remember(self, lease: Lease) -> None:
        self._routes[lease.reservation_id] = lease
        if len(self._routes) > ROUTE_CACHE_SIZE:
            self._routes.popitem(last=False)

    async def reserve(
        self, camera_id: str, source: str, user_id: str, quality: str = "auto"
    ) -> Admission:
        validate_camera_id(camera_id)
        validate_lease_source(source)
        rid = new_reservation_id()
        lease = Lease(rid, camera_id, source)
        reply = await self._scripts.reserve(
            [
                *keys.lease_keys(lease)[:5],
                keys.limit(source),
                keys.TOTAL_LIMIT,
                keys.metadata(camera_id),
                keys.camera(camera_id),
                keys.ACTIVE_CAMERAS,
                keys.SOURCES,
            ],
            [
                self.clock_offset_ms,
                lease.member,
                camera_id,
                source,
                user_id[:MAX_TEXT],
                quality[:MAX_TEXT],
                self.policy.lease_ms,
                self.policy.limit_for(source),
                self.policy.limit_for(TOTAL),
                self.owner,
                self.policy.claim_ms,
                GC_SLACK_MS,
                self.policy.token_ttl_ms,
            ],
        )
        expires, usage, limit, claimed, generation, state, name, token_exp = check(
            "reserve", reply, source=source, camera_id=camera_id
        )
        self._remember(lease)
        return Admission(
            reservation_id=rid,
            identity=viewer_identity(rid),
            camera_id=camera_id,
            source=source,
            expires_at_ms=int(expires),
            current_usage=int(usage),
            limit=int(limit),
            claimed=bool(claimed),
            generation=int(generation),
            pusher_state=str(state),
            camera_name=str(name),
            token_expires_at_ms=int(token_exp),
        )

    async def lease_of(self, reservation_id: str) -> Lease | None:
        """The routing of a reservation (None when it is gone)."""
        validate_reservation_id(reservation_id)
        cached = self._routes.get(reservation_id)
        if cached is not None:
            return cached
        async with translated():
            member = await self._client.hget(keys.reservation(reservation_id), "member")
        return Lease.parse(str(member)) if member else None

    async def leases_of_camera(self, camera_id: str) -> list[Lease]:
        """Every lease the camera's set holds, live or not yet swept."""
        validate_camera_id(camera_id)
        async with translated():
            members = await self._client.zrange(keys.camera_leases(camera_id), 0, -1)
        return [Lease.parse(str(m)) for m in members]

    async def renew(self, lease: Lease) -> Renewal:
        """Heartbeat a lease; ``token_expires_at_ms`` is set when a fresh token is due."""
        policy = self.policy
        reply = await self._scripts.heartbeat(
            [*keys.lease_keys(lease), keys.camera(lease.camera_id)],
            [
                self.clock_offset_ms,
                lease.member,
                policy.lease_ms,
                GC_SLACK_MS,
                policy.token_refresh_ms,
                policy.token_ttl_ms,
            ],
        )
        expires, token_exp, user = check(
            "heartbeat", reply, reservation_id=lease.reservation_id, camera_id=lease.camera_id
        )
        return Renewal(lease, int(expires), int(token_exp) or None, str(user))

    async def release_lease(self, lease: Lease) -> Release:
        self._routes.pop(lease.reservation_id, None)
        reply = await self._scripts.release(
            keys.lease_keys(lease),
            [self.clock_offset_ms, lease.member, self.policy.drain_grace_ms],
        )
        released, empty, deadline = check("release", reply)
        return Release(
            lease.reservation_id,
            released=bool(released),
            camera_id=lease.camera_id,
            camera_empty=bool(empty),
            drain_deadline_ms=int(deadline),
        )

    async def expire(self, batch: int = 200) -> ExpireReport:
        """Release up to ``batch`` expired leases; report cameras that lost their last one."""
        batch = max(1, min(batch, MAX_EXPIRE_BATCH))
        horizon = await server_ms(self._client, self.clock_offset_ms)
        async with translated():
            members = await self._client.zrange(
                keys.ALL_LEASES, "-inf", horizon, byscore=True, offset=0, num=batch
            )
        if not members:
            return ExpireReport(0)
        leases = [Lease.parse(str(m)) for m in members]
        script_keys = [keys.ALL_LEASES]
        for lease in leases:
            hash_key, source_set, camera_set, _, count_key, meta = keys.lease_keys(lease)
            script_keys += [hash_key, source_set, camera_set, count_key, meta]
        reply = await self._scripts.expire(
            script_keys,
            [self.clock_offset_ms, self.policy.drain_grace_ms, *members],
        )
        if reply and reply[0] == "INVALID":
            check("expire", reply)
        return ExpireReport(int(reply[0]), [str(c) for c in reply[1:]])

    async def expire_all(self, batch: int = 200, max_batches: int = 1000) -> ExpireReport:
        """Run :meth:`expire` until a batch comes back short (bounded by ``max_batches``)."""
        total, emptied = 0, []
        for _ in range(max_batches):
            report = await self.expire(batch)
            total += report.expired
            emptied += report.emptied_cameras
            if report.expired < batch:
                break
        return ExpireReport(total, emptied)

    async def recount(self, source: str) -> Recount:
        validate_source(source)
        reply = await self._scripts.recount(
            [keys.source_leases(source), keys.count(source)], [self.clock_offset_ms]
        )
        if len(reply) != 2 or not all(isinstance(v, int) for v in reply):
            check("recount", reply)
            raise ScriptProtocolError(f"recount answered {reply!r}")
        before, after = int(reply[0]), int(reply[1])
        return Recount(source, None if before < 0 else before, after)

    async def set_limit(self, source: str, limit: int) -> int | None:
        """Set a source's limit (``TOTAL`` for the global one); returns the previous value."""
        validate_source(source)
        lease_set = keys.ALL_LEASES if source == TOTAL else keys.source_leases(source)
        reply = await self._scripts.set_limit(
            [keys.limit(source), lease_set], [self.clock_offset_ms, limit]
        )
        before, _ = check("set_limit", reply, limit_name=source)
        return None if int(before) < 0 else int(before)


def reservation_info(reservation_id: str, data: dict[str, str]) -> ReservationInfo:
    """A reservation hash as read from Valkey."""
    return ReservationInfo(
        reservation_id=reservation_id,
        camera_id=data["camera_id"],
        source=data["source"],
        user_id=data.get("user_id", ""),
        quality=data.get("quality", ""),
        created_at_ms=int(float(data["created_at"])),
        expires_at_ms=int(float(data["expires_at"])),
        connected=bool(data.get("lk_sid")),  # a LiveKit session is in the room
    )
