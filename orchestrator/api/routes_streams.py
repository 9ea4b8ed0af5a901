"""``/api/v1/stream``: reserve, heartbeat, release, stats: the dashboard's REST contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from orchestrator.api.deps import CallerDep, ServicesDep
from orchestrator.api.schemas import (
    CameraStats,
    CodecStats,
    ErrorResponse,
    HeartbeatResponse,
    ReleaseResponse,
    ReserveRequest,
    ReserveResponse,
    SourceStats,
    StatsResponse,
    TotalStats,
)
from orchestrator.api.timefmt import iso, iso_required
from orchestrator.domain.ids import RESERVATION_PATTERN, room_name

router = APIRouter(prefix="/api/v1/stream", tags=["stream"])
RID = Annotated[str, Path(pattern=RESERVATION_PATTERN, description="reservation id")]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in (401, 422, 503, *statuses)}


def _no_store(response: Response) -> None:
    """A token-bearing answer: no browser or proxy cache may keep it."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


NO_STORE = Depends(_no_store)


@router.post(
    "/reserve",
    status_code=201,
    response_model=ReserveResponse,
    responses=errors(403, 404, 409, 429),
    dependencies=[NO_STORE],
)
async def reserve(body: ReserveRequest, caller: CallerDep) -> ReserveResponse:
    """Reserve a viewer slot. Answers once the lease is written; the pusher starts behind."""
    reserved = await caller.services.streams.reserve(
        caller.principal, body.camera_id, body.source, body.user_id, body.quality
    )
    admission = reserved.admission
    return ReserveResponse(
        reservation_id=admission.reservation_id,
        camera_id=admission.camera_id,
        camera_name=admission.camera_name,
        room_name=room_name(admission.camera_id),
        identity=admission.identity,
        token=reserved.token,
        livekit_url=caller.services.settings.browser_livekit_url,
        expires_at=iso_required(admission.expires_at_ms),
        quality=body.quality,
        source=admission.source,
        current_usage=admission.current_usage,
        limit=admission.limit,
        pusher_state=admission.pusher_state,
    )


@router.post("/heartbeat/{reservation_id}", responses=errors(404, 409), dependencies=[NO_STORE])
async def heartbeat(reservation_id: RID, caller: CallerDep) -> HeartbeatResponse:
    """Renew the lease (never shortens it). Carries a fresh token when the old one nears expiry."""
    renewed = await caller.services.streams.heartbeat(caller.principal, reservation_id)
    return HeartbeatResponse(
        expires_at=iso_required(renewed.expires_at_ms),
        token=renewed.token,
        token_expires_at=iso(renewed.token_expires_at_ms),
    )


@router.delete("/release/{reservation_id}", responses=errors())
async def release(reservation_id: RID, caller: CallerDep) -> ReleaseResponse:
    """Release the lease. Idempotent: releasing twice (or an expired lease) is fine."""
    result = await caller.services.streams.release(caller.principal, reservation_id)
    return ReleaseResponse(released=result.released)


@router.get("/stats", responses={503: {"model": ErrorResponse}})
async def stats(services: ServicesDep) -> StatsResponse:
    """Per-source usage and per-camera viewers, from Valkey only. Public: no secrets inside."""
    data = await services.streams.stats()
    source_stats = {
        s.source: SourceStats(
            source=s.source,
            current=s.current,
            limit=s.limit,
            usage_percent=round(100.0 * s.current / s.limit, 1) if s.limit else 0.0,
            active_cameras=s.active_cameras,
        )
        for s in data.sources
    }
    cameras = [
        CameraStats(
            camera_id=c.camera_id,
            camera_name=c.camera_name,
            viewer_count=c.viewer_count,
            reserved_count=c.reserved_count,
            publisher_connected=c.publisher_connected,
            ingress_status=c.ingress_status,
            viewers_by_source=c.viewers_by_source,
            source=c.source,
            active_since=iso(c.active_since_ms),
            pusher_state=c.pusher_state,
            generation=c.generation,
            restarts=c.restarts,
            last_error=c.last_error,
            next_retry_at=iso(c.retry_at_ms),
            codec=CodecStats(**asdict(c.codec)) if c.codec is not None else None,
            node=c.node,
            waiting_for=c.waiting,
        )
        for c in data.cameras
    ]
    return StatsResponse(
        active_streams=sum(1 for c in cameras if c.reserved_count > 0),
        total_viewers=sum(c.viewer_count for c in cameras),
        total_reserved=data.total_current,
        source_stats=source_stats,
        camera_stats=cameras,
        total=TotalStats(current=data.total_current, limit=data.total_limit),
        timestamp=iso_required(data.timestamp_ms),
    )
