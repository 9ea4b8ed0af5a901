"""The media rig: a lab network with a camera simulator and a decoding WHIP receiver in it.

Tests and benchmarks get a camera URL (with credentials) and a WHIP base URL that a pusher
joining the lab network (``rig.lab.network_mode``) can reach, plus the receiver's statistics
and the camera's NAL digests (what "passed through unchanged" is checked against).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.media.lab import LAB_ADDRESS, Lab, LabProcess, lab
from tests.media.receiver import ReceiverControl

CAMERA_PORT = 8554
RECEIVER_PORT = 8080
CAMERA_USER = "operator"


@dataclass
class MediaRig:
    lab: Lab
    tmp: Path
    size: str
    fps: int
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(8))
    profile: str = "baseline"  # the simulator's H.264 profile: baseline, main or high
    gop: int | None = None  # frames between IDRs (the simulator's default: one second)
    b_frames: int = 0  # consecutive B-frames (0-3; not with baseline)
    camera: LabProcess | None = None
    receiver: LabProcess | None = None
    extras: list[LabProcess] = field(default_factory=list)

    @property
    def camera_url(self) -> str:
        return f"rtsp://{CAMERA_USER}:{self.password}@{LAB_ADDRESS}:{CAMERA_PORT}/cam"

    @property
    def whip_base_url(self) -> str:
        return f"http://{LAB_ADDRESS}:{RECEIVER_PORT}/w"

    @property
    def control(self) -> ReceiverControl:
        return ReceiverControl(str(self.tmp / "receiver.sock"))

    def camera_digests(self) -> set[str]:
        return set(json.loads((self.tmp / "camera-digests.json").read_text()))

    def start_camera(self) -> None:
        self.camera = self.lab.python(
            self.tmp / "camera.log",
            "tests.media.camera",
            *("--host", LAB_ADDRESS, "--port", str(CAMERA_PORT), "--path", "/cam"),
            *("--size", self.size, "--fps", str(self.fps)),
            *("--profile", self.profile, "--b-frames", str(self.b_frames)),
            *(("--gop", str(self.gop)) if self.gop else ()),
            *("--user", CAMERA_USER, "--password", self.password),
            *("--digests", str(self.tmp / "camera-digests.json")),
        )

    def stop_camera(self) -> None:
        """The camera goes down: its process ends and every connection to it drops."""
        if self.camera is not None:
            self.camera.stop()
            self.camera = None

    def start_receiver(self, check_every: int = 5, decode: bool = True) -> None:
        sock = self.tmp / "receiver.sock"
        sock.unlink(missing_ok=True)
        self.receiver = self.lab.python(
            self.tmp / "receiver.log",
            "tests.media.receiver",
            *("--host", LAB_ADDRESS, "--port", str(RECEIVER_PORT), "--control", str(sock)),
            *("--check-every", str(check_every)),
            *(() if decode else ("--no-decode",)),
        )

    def extra_receiver(
        self, name: str, port: int, liveness: str, scale: float
    ) -> tuple[str, ReceiverControl]:
        """Another receiver in the lab (its WHIP URL and control), stopped with the rig.
        ``liveness``/``scale``: see ``tests/media/ice_liveness.py``."""
        sock = self.tmp / f"{name}.sock"
        sock.unlink(missing_ok=True)
        self.extras.append(
            self.lab.python(
                self.tmp / f"{name}.log",
                "tests.media.receiver",
                *("--host", LAB_ADDRESS, "--port", str(port), "--control", str(sock)),
                *("--liveness", liveness, "--liveness-scale", str(scale)),
            )
        )
        return f"http://{LAB_ADDRESS}:{port}/w", ReceiverControl(str(sock))

    def silent_endpoint(self, port: int) -> str:
        """A WHIP URL in the lab that accepts connections and never answers."""
        self.extras.append(
            self.lab.python(
                self.tmp / "silent.log",
                "tests.media.silent_server",
                *("--host", LAB_ADDRESS, "--port", str(port)),
            )
        )
        return f"http://{LAB_ADDRESS}:{port}/w"

    def logs(self) -> str:
        parts = []
        for name in ("camera.log", "receiver.log"):
            path = self.tmp / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        for extra in self.extras:
            extra.stop()
        self.extras.clear()
        self.stop_camera()
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None


@contextlib.contextmanager
def media_rig(
    client: Any,
    lab_image: str,
    tmp: Path,
    *,
    size: str = "640x360",
    fps: int = 25,
    decode: bool = True,
    gop: int | None = None,
) -> Iterator[MediaRig]:
    """``lab_image``: any local image whose default command idles (the lab's placeholder).
    ``decode=False``: the receiver counts frames without decoding them (many streams).
    ``gop``: the camera's IDR interval in frames (default one second)."""
    tmp.mkdir(parents=True, exist_ok=True)
    with lab(client, lab_image) as started:
        rig = MediaRig(started, tmp, size, fps, gop=gop)
        try:
            rig.start_camera()
            rig.start_receiver(check_every=5 if size == "640x360" else 25, decode=decode)
            yield rig
        except BaseException:
            print(rig.logs())
            raise
        finally:
            rig.stop()


def pusher_log(docker_api: Any, container_id: str) -> list[dict[str, Any]]:
    """The JSON log lines of a pusher container (blocking: call it through a thread)."""
    raw = docker_api.api.logs(container_id, stdout=True, stderr=True).decode()
    return [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
