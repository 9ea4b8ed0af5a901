"""Request and response bodies of the dashboard's REST contract. Extra fields are additive."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.domain.ids import ID_PATTERN, TOTAL


class ReserveRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    camera_id: str = Field(pattern=ID_PATTERN, examples=["cam-001-sheikh-zayed"])
    user_id: str = Field(min_length=1, max_length=256)
    source: str = Field(
        pattern=ID_PATTERN,
        examples=["DUBAI_POLICE"],
        description="the agency; not TOTAL, which names the global limit",
    )
    quality: str = Field(default="auto", min_length=1, max_length=32)

    @field_validator("source")
    @classmethod
    def _not_total(cls, value: str) -> str:
        if value == TOTAL:
            raise ValueError("TOTAL names the global limit; reserve under an agency")
        return value


class ReserveResponse(BaseModel):
    reservation_id: str
    camera_id: str
    camera_name: str
    room_name: str
    identity: str
    token: str
    livekit_url: str
    expires_at: str
    quality: str
    source: str
    current_usage: int
    limit: int
    pusher_state: str


class HeartbeatResponse(BaseModel):
    status: str = "ok"
    expires_at: str
    token: str | None = None
    token_expires_at: str | None = None


class ReleaseResponse(BaseModel):
    status: str = "released"
    released: bool


class SourceStats(BaseModel):
    source: str
    current: int
    limit: int
    usage_percent: float
    active_cameras: int


class CodecStats(BaseModel):
    """What the camera really encodes, as its pusher read it from the stream. Browsers get it
    unchanged, labelled Constrained Baseline (42001f); B-frames or High profile may not play
    everywhere (docs/runbook.md, "Camera settings")."""

    profile: str = Field(description="H.264 profile from the SPS (Baseline, Main, High, ...)")
    level: str = Field(description="H.264 level, e.g. 3.1")
    width: int
    height: int
    fps: float | None = Field(description="frame rate, when the stream says")
    b_frames: bool = Field(description="B-frames were seen in the stream")
    generation: int | None = Field(
        default=None, description="the pusher generation that reported it (a newer one may not yet)"
    )


class CameraStats(BaseModel):
    camera_id: str
    camera_name: str
    viewer_count: int = Field(
        description="viewers connected to the LiveKit room with a live reservation; "
        "never counts the publisher"
    )
    reserved_count: int = Field(description="live reservations (leases) of the camera")
    publisher_connected: bool = Field(description="the camera's ingress participant is in the room")
    ingress_status: str | None = Field(
        default=None, description="last ingress state LiveKit reported (ENDPOINT_PUBLISHING, ...)"
    )
    viewers_by_source: dict[str, int]
    source: str
    active_since: str | None
    pusher_state: str
    generation: int
    restarts: int
    last_error: str | None
    next_retry_at: str | None = None
    codec: CodecStats | None = Field(
        default=None, description="the camera's stream as its pusher reported it (None: not yet)"
    )
    node: str | None = Field(
        default=None, description="the Swarm node the pusher runs on (None: one engine, or not yet)"
    )
    waiting_for: str | None = Field(
        default=None,
        description="why the pusher does not run yet, as the runtime says it (a Swarm task no "
        "node has room for: 'no suitable node (insufficient resources on 2 nodes)'); it starts "
        "by itself once a node has room",
    )


class TotalStats(BaseModel):
    current: int
    limit: int


class StatsResponse(BaseModel):
    active_streams: int
    total_viewers: int = Field(description="connected viewers over all cameras")
    total_reserved: int = Field(description="live reservations over all cameras")
    source_stats: dict[str, SourceStats]
    camera_stats: list[CameraStats]
    total: TotalStats
    timestamp: str = Field(description="Valkey's time when the snapshot was read")
    snapshot_age_ms: int = Field(
        description="how long ago this replica read the snapshot from Valkey (at most "
        "CCTV_STATS_MAX_AGE_SECONDS, plus the read itself)"
    )


class CameraStatsResponse(CameraStats):
    """``/stats/{camera_id}``: one camera, read when asked."""

    timestamp: str = Field(description="Valkey's time when it was read")


class CameraBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    rtsp_url: str = Field(pattern=r"^rtsps?://", max_length=2048)
    enabled: bool = True


class CameraOut(BaseModel):
    """A camera as the API shows it: the RTSP URL's credentials are never returned."""

    camera_id: str
    name: str
    enabled: bool
    rtsp_url_redacted: str


class CameraList(BaseModel):
    cameras: list[CameraOut]


class CameraResetOut(BaseModel):
    camera_id: str
    released: int = Field(description="reservations ended")
    kicked: int = Field(description="viewers removed from the LiveKit room")
    container_left: bool = Field(description="a pusher of this camera is still on the runtime")
    state: str = Field(description="the pusher state after the reset (IDLE when it stopped)")
    notes: list[str]


class ReservationOut(BaseModel):
    reservation_id: str
    identity: str
    source: str
    user_id: str | None = Field(description="None when the reservation's record is gone")
    connected: bool = Field(description="its viewer is in the camera's LiveKit room")
    expires_at: str


class ReservationList(BaseModel):
    reservations: list[ReservationOut]


class KickOut(BaseModel):
    reservation_id: str
    released: bool
    participant_removed: bool
    notes: list[str]


class LimitBody(BaseModel):
    limit: int = Field(ge=0, le=1_000_000_000)

    @field_validator("limit", mode="before")
    @classmethod
    def _json_number(cls, value: object) -> object:
        """``false``, ``true`` and ``"5"`` are refused (422), never read as numbers. ``5.5`` is
        refused too; ``5.0`` is the integer 5, as the schema's ``type: integer`` says."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a JSON integer")
        return value


class LimitOut(BaseModel):
    source: str
    limit: int
    previous: int | None


class ErrorBody(BaseModel):
    code: str
    message: str
    message_en: str | None = None
    message_ar: str | None = None
    source: str | None = None
    current: int | None = None
    limit: int | None = None
    scope: str | None = None
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
    degraded: list[str]


class WebhookAck(BaseModel):
    status: str
    event: str
    outcome: str = Field(
        description="applied, connected, disconnected, stale, duplicate, unknown or ignored"
    )
