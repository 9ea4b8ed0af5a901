"""Camera registry in Valkey: ``stream:camera:<id>`` hashes indexed by ``stream:cameras``.

Registry writes are MULTI transactions (they touch no counter). ``rtsp_url`` is a secret:
this module returns it only to callers that start pushers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from orchestrator.domain.ids import validate_camera_id
from orchestrator.domain.models import Camera
from orchestrator.errors import InvalidInput
from orchestrator.store import keys
from orchestrator.store.errors import translated

MAX_NAME = 200
MAX_URL = 2048


def validate_camera(camera: Camera) -> Camera:
    validate_camera_id(camera.camera_id)
    if not camera.name or len(camera.name) > MAX_NAME:
        raise InvalidInput(f"name must be 1-{MAX_NAME} characters", field="name")
    if not camera.rtsp_url.startswith(("rtsp://", "rtsps://")) or len(camera.rtsp_url) > MAX_URL:
        raise InvalidInput("rtsp_url must be an rtsp:// or rtsps:// URL", field="rtsp_url")
    return camera


class CameraRegistry:
    def __init__(self, client: Redis) -> None:
        self._client = client

    async def put(self, camera: Camera) -> bool:
        """Create or replace a camera. Returns True when it was new."""
        validate_camera(camera)
        async with translated(), self._client.pipeline(transaction=True) as pipe:
            pipe.exists(keys.camera(camera.camera_id))
            pipe.hset(
                keys.camera(camera.camera_id),
                mapping={
                    "name": camera.name,
                    "rtsp_url": camera.rtsp_url,
                    "enabled": "1" if camera.enabled else "0",
                    "updated_at": int(time.time() * 1000),
                },
            )
            pipe.sadd(keys.CAMERAS, camera.camera_id)
            existed, *_ = await pipe.execute()
        return not existed

    async def get(self, camera_id: str) -> Camera | None:
        validate_camera_id(camera_id)
        async with translated():
            data: dict[str, str] = await self._client.hgetall(keys.camera(camera_id))  # type: ignore[assignment]
        return _camera(camera_id, data) if data else None

    async def all(self) -> list[Camera]:
        async with translated():
            ids: list[str] = sorted(await self._client.smembers(keys.CAMERAS))  # type: ignore[arg-type]
            async with self._client.pipeline(transaction=False) as pipe:
                for camera_id in ids:
                    pipe.hgetall(keys.camera(camera_id))
                rows: list[dict[str, str]] = await pipe.execute()
        return [_camera(cid, data) for cid, data in zip(ids, rows, strict=True) if data]

    async def names(self, camera_ids: list[str]) -> dict[str, str]:
        async with translated(), self._client.pipeline(transaction=False) as pipe:
            for camera_id in camera_ids:
                pipe.hget(keys.camera(camera_id), "name")
            rows = await pipe.execute()
        return {cid: name or cid for cid, name in zip(camera_ids, rows, strict=True)}

    async def delete(self, camera_id: str) -> bool:
        validate_camera_id(camera_id)
        async with translated(), self._client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.camera(camera_id))
            pipe.srem(keys.CAMERAS, camera_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def seed(self, path: Path) -> int:
        """Load cameras from a YAML or JSON file (a list, or ``{cameras: [...]}``)."""
        cameras = load_cameras_file(path)
        for camera in cameras:
            await self.put(camera)
        return len(cameras)


def _camera(camera_id: str, data: dict[str, str]) -> Camera:
    return Camera(
        camera_id=camera_id,
        name=data.get("name", camera_id),
        rtsp_url=data.get("rtsp_url", ""),
        enabled=data.get("enabled") == "1",
    )


def load_cameras_file(path: Path) -> list[Camera]:
    text = path.read_text(encoding="utf-8")
    raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(raw, dict):
        raw = raw.get("cameras", [])
    if not isinstance(raw, list):
        raise InvalidInput(f"{path}: expected a list of cameras")
    cameras = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise InvalidInput(f"{path}: every camera must be a mapping")
        try:
            camera = Camera(
                camera_id=str(entry["camera_id"]),
                name=str(entry.get("name", entry["camera_id"])),
                rtsp_url=str(entry["rtsp_url"]),
                enabled=bool(entry.get("enabled", True)),
            )
        except KeyError as exc:
            raise InvalidInput(f"{path}: camera entry lacks {exc.args[0]}") from exc
        cameras.append(validate_camera(camera))
    return cameras
