"""Admin-only resources: the camera registry, the quota limits, and the on-call repairs the
status page offers (reset a camera, list and kick its viewers)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Response

from orchestrator.api.deps import AdminDep
from orchestrator.api.routes_streams import errors
from orchestrator.api.schemas import (
    CameraBody,
    CameraList,
    CameraOut,
    CameraResetOut,
    KickOut,
    LimitBody,
    LimitOut,
    ReservationList,
    ReservationOut,
)
from orchestrator.api.timefmt import iso_required
from orchestrator.domain.ids import ID_PATTERN, RESERVATION_PATTERN, viewer_identity
from orchestrator.domain.models import Camera
from orchestrator.domain.redact import redact_url
from orchestrator.errors import CameraNotFound
from orchestrator.oncall.actions import OnCall
from orchestrator.store.inspection import StateInspector

router = APIRouter(prefix="/api/v1", tags=["admin"])
CameraId = Annotated[str, Path(pattern=ID_PATTERN)]
Source = Annotated[str, Path(pattern=ID_PATTERN)]
ReservationId = Annotated[str, Path(pattern=RESERVATION_PATTERN)]


def camera_out(camera: Camera) -> CameraOut:
    return CameraOut(
        camera_id=camera.camera_id,
        name=camera.name,
        enabled=camera.enabled,
        rtsp_url_redacted=redact_url(camera.rtsp_url),
    )


@router.get("/cameras", responses=errors(403))
async def list_cameras(admin: AdminDep) -> CameraList:
    return CameraList(cameras=[camera_out(c) for c in await admin.services.registry.all()])


@router.get("/cameras/{camera_id}", responses=errors(403, 404))
async def get_camera(camera_id: CameraId, admin: AdminDep) -> CameraOut:
    camera = await admin.services.registry.get(camera_id)
    if camera is None:
        raise CameraNotFound(f"camera {camera_id} not found")
    return camera_out(camera)


@router.put("/cameras/{camera_id}", responses={201: {"model": CameraOut}, **errors(403)})
async def put_camera(
    camera_id: CameraId, body: CameraBody, admin: AdminDep, response: Response
) -> CameraOut:
    """Create (201) or replace (200) a camera. The RTSP URL is stored, never returned.
    Disabling a camera ends its viewing: its reservations are released and its pusher stops."""
    camera = Camera(camera_id, body.name, body.rtsp_url, body.enabled)
    if await admin.services.cameras.put(camera):
        response.status_code = 201
    return camera_out(camera)


@router.delete("/cameras/{camera_id}", responses=errors(403, 404))
async def delete_camera(camera_id: CameraId, admin: AdminDep) -> dict[str, str]:
    """Remove a camera; its reservations are released and its pusher stops."""
    if not await admin.services.cameras.delete(camera_id):
        raise CameraNotFound(f"camera {camera_id} not found")
    return {"status": "deleted"}


@router.post("/cameras/{camera_id}/reset", responses=errors(403, 404))
async def reset_camera(camera_id: CameraId, admin: AdminDep) -> CameraResetOut:
    """End every reservation of the camera, disconnect its viewers and stop its pusher now:
    ``cctv-orchestrator reset-camera`` (docs/runbook.md), through the same scripts. Idempotent."""
    if await admin.services.registry.get(camera_id) is None:
        raise CameraNotFound(f"camera {camera_id} not found")
    report = await OnCall(admin.services).reset_camera(camera_id)
    return CameraResetOut(**asdict(report))


@router.get("/cameras/{camera_id}/reservations", responses=errors(403, 404))
async def camera_reservations(camera_id: CameraId, admin: AdminDep) -> ReservationList:
    """The camera's live reservations, soonest expiry first (the status page's viewer list)."""
    if await admin.services.registry.get(camera_id) is None:
        raise CameraNotFound(f"camera {camera_id} not found")
    rows = await StateInspector(admin.services.client).leases(camera_id)
    return ReservationList(
        reservations=[
            ReservationOut(
                reservation_id=row.lease.reservation_id,
                identity=viewer_identity(row.lease.reservation_id),
                source=row.lease.source,
                user_id=row.info.user_id if row.info else None,
                connected=bool(row.info and row.info.connected),
                expires_at=iso_required(row.expires_at_ms),
            )
            for row in rows
        ]
    )


@router.delete("/reservations/{reservation_id}", responses=errors(403))
async def kick(reservation_id: ReservationId, admin: AdminDep) -> KickOut:
    """End the reservation and remove its viewer from the camera's LiveKit room:
    ``cctv-orchestrator kick`` (docs/runbook.md). Idempotent."""
    return KickOut(**asdict(await OnCall(admin.services).kick(reservation_id)))


@router.put("/limits/{source}", responses=errors(403, 409))
async def put_limit(source: Source, body: LimitBody, admin: AdminDep) -> LimitOut:
    """Set a source's limit (``TOTAL`` for the global one). Refused below live usage (409)."""
    previous = await admin.services.store.set_limit(source, body.limit)
    return LimitOut(source=source, limit=body.limit, previous=previous)
