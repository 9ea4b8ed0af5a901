"""``/api/v1/stream``: reserve, heartbeat, release, stats: the dashboard's REST contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api.deps import CallerDep, ServicesDep
from orchestrator.api.schemas import (
    CameraStatsResponse,
    ErrorResponse,
    HeartbeatResponse,
    ReleaseResponse,
    ReserveRequest,
    ReserveResponse,
    StatsResponse,
)
from orchestrator.api.stats_body import camera_json, stats_reply
from orchestrator.api.timefmt import iso, iso_required
from orchestrator.domain.ids import ID_PATTERN, RESERVATION_PATTERN, room_name
from orchestrator.errors import CameraNotFound

router = APIRouter(prefix="/api/v1/stream", tags=["stream"])
RID = Annotated[str, Path(pattern=RESERVATION_PATTERN, description="reservation id")]
CameraPath = Annotated[str, Path(pattern=ID_PATTERN, description="camera id")]


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


CameraQuery = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="one camera only: the same as /stats/{camera_id}"),
]
STATS_HEADERS = {
    "ETag": {"description": "changes when the data does (not when only time passes)"},
    "Age": {"description": "seconds since the snapshot was read from Valkey"},
}


@router.get(
    "/stats",
    response_model=StatsResponse | CameraStatsResponse,  # the second with ?camera_id=
    responses={
        200: {"headers": STATS_HEADERS},
        304: {"description": "If-None-Match named the current ETag: nothing changed"},
        404: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def stats(
    request: Request,
    services: ServicesDep,
    camera_id: CameraQuery = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Per-source usage and per-camera viewers, from Valkey only. Public: no secrets inside.

    Every caller shares this replica's snapshot, read at most once per
    ``CCTV_STATS_MAX_AGE_SECONDS``: ``snapshot_age_ms`` (and the ``Age`` header) say how old
    it is. Send the last ``ETag`` as ``If-None-Match`` to get a 304 when nothing changed.
    ``?camera_id=`` answers that camera alone (see ``/stats/{camera_id}``)."""
    if camera_id is not None:
        return await _camera_response(services, camera_id)
    reply = await stats_reply(services.stats, request.app.state.stats_bodies, if_none_match)
    if reply.status == 304:
        return Response(status_code=304, headers=reply.headers)
    return Response(reply.content, media_type="application/json", headers=reply.headers)


@router.get(
    "/stats/{camera_id}",
    response_model=CameraStatsResponse,
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def camera_stats(services: ServicesDep, camera_id: CameraPath) -> Response:
    """One camera's stats, read now: its cost does not grow with the number of cameras. An
    idle camera answers with zero counts; an unknown one 404."""
    return await _camera_response(services, camera_id)


async def _camera_response(services: ServicesDep, camera_id: str) -> Response:
    reading = await services.streams.camera_stats(camera_id)
    if reading is None:
        raise CameraNotFound(f"camera {camera_id} not found")
    now_ms, camera = reading
    content = {**camera_json(camera), "timestamp": iso_required(now_ms)}
    return JSONResponse(content, headers={"Cache-Control": "no-cache"})
