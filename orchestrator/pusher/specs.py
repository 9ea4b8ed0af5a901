"""What to run for a camera: the container spec of its WHIP pusher, from settings.

The container gets its inputs as env (``RTSP_URL``, ``WHIP_URL``, ``WHIP_TOKEN``,
``CAMERA_ID``); the spec keeps them out of its repr and out of labels. Until LiveKit ingress
is wired in, the WHIP endpoint and its token come from settings (``CCTV_WHIP_URL``,
``CCTV_WHIP_TOKEN``).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.domain.models import Camera
from orchestrator.runtime.spec import PusherSpec


@dataclass(frozen=True, slots=True)
class WhipTarget:
    url: str
    token: str


class SpecFactory:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def whip_target(self, camera_id: str) -> WhipTarget:
        token = self._settings.whip_token
        return WhipTarget(self._settings.whip_url, token.get_secret_value() if token else "")

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
            },
            network=s.pusher_network,
            mem_limit=s.pusher_memory,
            nano_cpus=round(s.pusher_cpus * 1_000_000_000),
            stop_timeout_seconds=s.pusher_stop_timeout_seconds,
        )
