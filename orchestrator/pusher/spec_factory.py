"""What to run for a camera: the runtime-neutral spec of its WHIP pusher, from settings.

The pusher gets its inputs as env (``RTSP_URL``, ``WHIP_URL``, ``WHIP_TOKEN``, ``CAMERA_ID``,
``PUSHER_ENGINE``, ``PUSHER_RTSP_READER``); the spec keeps them out of its repr and out of
labels. The WHIP endpoint and its token come from a :class:`TargetSource`: the camera's LiveKit
ingress (``livekit.ingress.IngressManager``), or a fixed endpoint from settings
(``CCTV_WHIP_URL``, ``CCTV_WHIP_TOKEN``) when one is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.config import Settings
from orchestrator.domain.containers import PusherSpec
from orchestrator.domain.models import Camera


@dataclass(frozen=True, slots=True)
class WhipTarget:
    url: str
    token: str  # secret: the ingress stream key, sent as a Bearer token

    def __repr__(self) -> str:
        return f"WhipTarget(url={self.url!r}, token=***)"


class TargetSource(Protocol):
    async def whip_target(self, camera_id: str) -> WhipTarget: ...


class StaticTarget:
    """Every camera publishes to the one endpoint of ``CCTV_WHIP_URL``."""

    def __init__(self, settings: Settings) -> None:
        token = settings.whip_token
        self._target = WhipTarget(settings.whip_url, token.get_secret_value() if token else "")

    async def whip_target(self, camera_id: str) -> WhipTarget:
        return self._target


class SpecFactory:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def build(self, camera: Camera, generation: int, target: WhipTarget) -> PusherSpec:
        s = self._settings
        return PusherSpec(
            camera_id=camera.camera_id,
            generation=generation,
            image=s.pusher_image,
            env={
                "CAMERA_ID": camera.camera_id,
                "RTSP_URL": camera.rtsp_url,
                "WHIP_URL": target.url,
                "WHIP_TOKEN": target.token,
                "PUSHER_ENGINE": s.pusher_engine,
                "PUSHER_RTSP_READER": s.pusher_rtsp_reader,
            },
            instance=s.instance,
            network=s.pusher_network,
            memory_bytes=s.pusher_memory_bytes,
            cpus=s.pusher_cpus,
            stop_grace_seconds=s.pusher_stop_timeout_seconds,
        )
