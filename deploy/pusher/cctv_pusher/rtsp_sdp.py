"""What the lean RTSP reader needs from a camera's SDP (RFC 8866, RFC 6184): its H.264 video."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urljoin

from .h264info import MAX_PLAUSIBLE_FPS


class SdpError(ValueError):
    """The description offers no H.264 video this reader can take."""


@dataclass(frozen=True, slots=True)
class VideoMedia:
    payload_type: int
    control: str  # absolute URL to SETUP
    aggregate: str  # absolute URL to PLAY and TEARDOWN
    parameter_sets: tuple[bytes, ...]  # SPS and PPS NAL units from sprop-parameter-sets
    fps: float | None  # a=framerate


def parse_video(sdp: str, base: str) -> VideoMedia:
    """The first H.264 video of ``sdp``; ``base``: the URL its relative controls resolve to
    (Content-Base, else Content-Location, else the DESCRIBE URL)."""
    session: list[str] = []
    sections: list[list[str]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    aggregate = _resolve(base, _attribute(session, "control") or "*")
    for section in sections:
        fields = section[0][2:].split()
        if len(fields) < 4 or fields[0] != "video":
            continue
        codecs = _rtpmap(section)
        for pt in fields[3:]:
            if pt.isdigit() and codecs.get(int(pt), "").upper().startswith("H264/"):
                return _video(section, int(pt), base, aggregate)
        found = ", ".join(codecs.values()) or "no rtpmap"
        raise SdpError(f"the camera's video is not H.264 ({found}); the pusher never transcodes")
    raise SdpError("the camera's description has no video")


def _video(section: list[str], pt: int, base: str, aggregate: str) -> VideoMedia:
    fmtp = _fmtp(section, pt)
    mode = fmtp.get("packetization-mode", "0")
    if mode not in ("0", "1"):
        raise SdpError(f"H.264 packetization-mode {mode} (interleaved) is not supported")
    sets: list[bytes] = []
    for item in fmtp.get("sprop-parameter-sets", "").split(","):
        if item.strip():
            try:
                sets.append(base64.b64decode(item.strip(), validate=True))
            except binascii.Error:
                raise SdpError("unreadable sprop-parameter-sets") from None
    control = _attribute(section, "control")
    media_url = _resolve(base, control) if control else aggregate
    return VideoMedia(pt, media_url, aggregate, tuple(s for s in sets if s), _framerate(section))


def _attribute(lines: list[str], name: str) -> str | None:
    prefix = f"a={name}:"
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def _rtpmap(section: list[str]) -> dict[int, str]:
    codecs: dict[int, str] = {}
    for line in section:
        if line.startswith("a=rtpmap:"):
            pt, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            if pt.strip().isdigit():
                codecs[int(pt)] = encoding.strip()
    return codecs


def _fmtp(section: list[str], pt: int) -> dict[str, str]:
    prefix = f"a=fmtp:{pt} "
    for line in section:
        if line.startswith(prefix):
            pairs = (item.partition("=") for item in line[len(prefix) :].split(";"))
            return {key.strip().lower(): value.strip() for key, _, value in pairs if key.strip()}
    return {}


def _framerate(section: list[str]) -> float | None:
    value = _attribute(section, "framerate")
    try:
        fps = float(value) if value else None
    except ValueError:
        return None
    return fps if fps is not None and 0 < fps <= MAX_PLAUSIBLE_FPS else None


def _resolve(base: str, control: str) -> str:
    if control == "*":
        return base
    if "://" in control:
        return control
    return urljoin(base if base.endswith("/") else base + "/", control)
