"""What a camera really encodes, as its pusher reports it. Pure: parsing and validation only.

Browsers get the camera's H.264 unchanged, but LiveKit's ingress in bypass mode accepts only
the label Constrained Baseline ``42001f``, so a High-profile or B-frame
stream reaches browsers mislabelled. The pusher reads the camera's SPS and slice headers and
logs one JSON line per finding (``{"event": "codec", ...}``, deploy/pusher/README.md); this
module picks the latest valid one out of a container's log text. Container output is not
trusted: every field is checked, and a line that fails a check is ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_PROFILE = re.compile(r"^[A-Za-z0-9 :()]{1,40}$")  # "High 4:2:2", "unknown (44)"
_LEVEL = re.compile(r"^[0-9]{1,2}(\.[0-9])?$|^1b$")
MAX_DIMENSION = 16384
MAX_FPS = 1000.0
MARKER = '"codec"'  # cheap pre-filter: only lines holding it are parsed


# The metadata hash fields :meth:`CodecReport.from_meta` reads.
CODEC_FIELDS = (
    "codec_profile",
    "codec_level",
    "codec_width",
    "codec_height",
    "codec_fps",
    "codec_b_frames",
    "codec_generation",
)


@dataclass(frozen=True, slots=True)
class CodecReport:
    profile: str
    level: str
    width: int
    height: int
    fps: float | None
    b_frames: bool
    generation: int | None = None  # of the pusher that reported it (stored reports only)

    @classmethod
    def from_event(cls, event: object) -> CodecReport | None:
        """The report in one decoded log event, or None when it is not a valid codec event."""
        if not isinstance(event, dict) or event.get("event") != "codec":
            return None
        profile, level = event.get("profile"), event.get("h264_level")
        width, height = event.get("width"), event.get("height")
        fps, b_frames = event.get("fps"), event.get("b_frames")
        if not (isinstance(profile, str) and _PROFILE.fullmatch(profile)):
            return None
        if not (isinstance(level, str) and _LEVEL.fullmatch(level)):
            return None
        if not (_dimension(width) and _dimension(height)) or not isinstance(b_frames, bool):
            return None
        if fps is not None and not (
            isinstance(fps, int | float) and not isinstance(fps, bool) and 0 < fps <= MAX_FPS
        ):
            return None
        return cls(profile, level, int(width), int(height), _fps(fps), b_frames)  # type: ignore[arg-type]

    @classmethod
    def latest_in(cls, text: str) -> CodecReport | None:
        """The last valid codec report in log text (one JSON object per line; a line may
        carry a timestamp before the object, as ``docker logs --timestamps`` prints)."""
        for line in reversed(text.splitlines()):
            if MARKER not in line or "{" not in line:
                continue
            try:
                event = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            report = cls.from_event(event)
            if report is not None:
                return report
        return None

    def to_fields(self) -> list[str]:
        """Script arguments: profile, level, width, height, fps ('' unknown), b_frames 0/1."""
        fps = "" if self.fps is None else f"{self.fps:g}"
        return [self.profile, self.level, str(self.width), str(self.height), fps,
                str(int(self.b_frames))]  # fmt: skip

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> CodecReport | None:
        """The report stored on a camera's metadata hash (``codec_*`` fields), if any."""
        if not meta.get("codec_profile"):
            return None
        try:
            fps = float(meta["codec_fps"]) if meta.get("codec_fps") else None
            return cls(
                meta["codec_profile"],
                meta.get("codec_level", ""),
                int(meta.get("codec_width", "0")),
                int(meta.get("codec_height", "0")),
                fps,
                meta.get("codec_b_frames") == "1",
                int(meta["codec_generation"]) if meta.get("codec_generation") else None,
            )
        except ValueError:
            return None


def _dimension(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DIMENSION


def _fps(value: object) -> float | None:
    return round(float(value), 3) if isinstance(value, int | float) else None
