"""Gauges about shared state, read from Valkey at scrape time.

Every replica answers ``/metrics`` from the same Valkey read (the shared stats snapshot, at
most ``CCTV_STATS_MAX_AGE_SECONDS`` old), so all of them report the same truth; nothing here is
a per-process counter. Camera gauges cover active cameras only (bounded label sets: a camera
leaves the series when it goes idle).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from orchestrator.domain.pusher import PusherState
from orchestrator.errors import TemporaryError
from orchestrator.stats_snapshot import StatsSource

PUSHER_STATES: tuple[str, ...] = tuple(PusherState)


class StateGauges:
    def __init__(
        self,
        reader: StatsSource,
        registry: CollectorRegistry,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._reader = reader
        self._on_error = on_error
        self.reservations = Gauge(
            "cctv_reservations_active",
            "Live reservations (leases) per source.",
            ["source"],
            registry=registry,
        )
        self.limits = Gauge(
            "cctv_source_limit", "Reservation limit per source (TOTAL: global).", ["source"],
            registry=registry,
        )  # fmt: skip
        self.pushers = Gauge(
            "cctv_pushers", "Active cameras by pusher state.", ["state"], registry=registry
        )
        self.viewers = Gauge(
            "cctv_camera_viewers",
            "Viewers connected to the camera's LiveKit room with a live reservation "
            "(active cameras only; the publisher is never counted).",
            ["camera_id"],
            registry=registry,
        )
        self.codec = Gauge(
            "cctv_camera_codec_info",
            "1 per active camera whose pusher reported the camera's stream: H.264 profile, "
            "level and whether it has B-frames (browsers get it labelled 42001f).",
            ["camera_id", "profile", "level", "b_frames"],
            registry=registry,
        )
        self.waiting = Gauge(
            "cctv_pushers_waiting",
            "Active cameras whose pusher the runtime has not placed yet (a Swarm task no node "
            "has room for: see waiting_for in the stats); each starts by itself once a node "
            "has room.",
            registry=registry,
        )
        self.read_ok = Gauge(
            "cctv_state_read_ok",
            "1 when this scrape read the shared state from Valkey, 0 when it could not "
            "(the state gauges are then absent).",
            registry=registry,
        )

    async def refresh(self) -> None:
        """Replace every series with what Valkey holds now (none when Valkey is down)."""
        for gauge in (self.reservations, self.limits, self.pushers, self.viewers, self.codec):
            gauge.clear()
        self.waiting.set(0)
        try:
            stats = await self._reader.read()
        except TemporaryError as exc:
            if self._on_error is not None:
                self._on_error(exc)
            self.read_ok.set(0)
            return
        self.read_ok.set(1)
        for source in stats.sources:
            self.reservations.labels(source.source).set(source.current)
            self.limits.labels(source.source).set(source.limit)
        self.limits.labels("TOTAL").set(stats.total_limit)
        by_state = dict.fromkeys(PUSHER_STATES, 0)
        for camera in stats.cameras:
            by_state[camera.pusher_state] = by_state.get(camera.pusher_state, 0) + 1
            self.viewers.labels(camera.camera_id).set(camera.viewer_count)
            if camera.codec is not None:
                codec = camera.codec
                b_frames = "true" if codec.b_frames else "false"
                self.codec.labels(camera.camera_id, codec.profile, codec.level, b_frames).set(1)
        for state, count in by_state.items():
            self.pushers.labels(state).set(count)
        self.waiting.set(sum(1 for camera in stats.cameras if camera.waiting))
