"""The stream service: what the REST routes and the CLI call.

It authorizes (a key acts only for its sources), calls the reservation store, mints viewer
tokens and hands start claims to the pusher lifecycle. Nothing here waits for a container.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.auth import Principal
from orchestrator.domain.models import Admission, Lease, Release
from orchestrator.errors import Forbidden, ReservationNotFound
from orchestrator.livekit.tokens import TokenMinter
from orchestrator.metrics import ServiceMetrics
from orchestrator.store.reservations import ReservationStore
from orchestrator.store.stats import CameraStat, StatsReader, StreamStats

OnClaim = Callable[[Admission], None]
OnDrain = Callable[[str, float], None]  # camera id, drain grace in s
OTHER_SOURCE = "_other"  # the metric label of refused reserves for unconfigured sources


@dataclass(frozen=True, slots=True)
class Reserved:
    admission: Admission
    token: str


@dataclass(frozen=True, slots=True)
class Renewed:
    expires_at_ms: int
    token: str | None
    token_expires_at_ms: int | None


class StreamService:
    def __init__(
        self,
        store: ReservationStore,
        stats: StatsReader,
        tokens: TokenMinter,
        *,
        on_claim: OnClaim | None = None,
        on_drain: OnDrain | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.store = store
        self.stats_reader = stats
        self.tokens = tokens
        self._on_claim = on_claim
        self._on_drain = on_drain
        self._metrics = metrics if metrics is not None else ServiceMetrics(None)
        self._configured = frozenset(source for source, _ in store.policy.default_limits)

    async def reserve(
        self, principal: Principal, camera_id: str, source: str, user_id: str, quality: str
    ) -> Reserved:
        if not principal.may_act_for(source):
            raise Forbidden(f"key {principal.name} may not act for source {source}")
        try:
            admission = await self.store.reserve(camera_id, source, user_id, quality)
        except Exception as exc:
            self._metrics.reserve(self._source_label(source), exc)
            raise
        self._metrics.reserve(source, None)  # admitted: the source has a limit above zero
        token = self.tokens.viewer_token(
            admission.reservation_id, user_id, camera_id, admission.token_expires_at_ms
        )
        if admission.claimed and self._on_claim is not None:
            self._on_claim(admission)  # schedules the start; never awaited here
        return Reserved(admission, token)

    def _source_label(self, source: str) -> str:
        """The metric label of a refused reserve's source: its name when it is configured,
        else ``OTHER_SOURCE``, so whatever a ``*`` or admin key sends, the series stay few."""
        return source if source in self._configured else OTHER_SOURCE

    async def _authorized_lease(self, principal: Principal, reservation_id: str) -> Lease | None:
        """The lease, or None when it does not exist *or* belongs to a source the key may not
        act for: another agency's reservation looks exactly like a missing one."""
        lease = await self.store.lease_of(reservation_id)
        if lease is not None and not principal.may_act_for(lease.source):
            return None
        return lease

    async def heartbeat(self, principal: Principal, reservation_id: str) -> Renewed:
        lease = await self._authorized_lease(principal, reservation_id)
        if lease is None:
            raise ReservationNotFound(f"reservation {reservation_id} not found or expired")
        renewal = await self.store.renew(lease)
        token = None
        if renewal.token_expires_at_ms is not None:
            token = self.tokens.viewer_token(
                reservation_id,
                renewal.user_id,
                renewal.lease.camera_id,
                renewal.token_expires_at_ms,
            )
        return Renewed(renewal.expires_at_ms, token, renewal.token_expires_at_ms)

    async def release(self, principal: Principal, reservation_id: str) -> Release:
        lease = await self._authorized_lease(principal, reservation_id)
        if lease is None:
            return Release(reservation_id, released=False)
        released = await self.store.release_lease(lease)
        if released.drain_deadline_ms and self._on_drain is not None:
            self._on_drain(lease.camera_id, self.store.policy.drain_grace_ms / 1000)
        return released

    async def stats(self) -> StreamStats:
        """Read now (the on-call commands want the truth, not the shared snapshot)."""
        return await self.stats_reader.read()

    async def camera_stats(self, camera_id: str) -> tuple[int, CameraStat] | None:
        return await self.stats_reader.read_camera(camera_id)
