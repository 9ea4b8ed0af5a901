"""The pusher's inputs, from the environment the orchestrator sets (see ``--help``)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# ffmpeg: FFmpeg's own WHIP muxer, all in C (the default, about 0.4 of the CPU and memory);
# aiortc: packetized in Python, and it verifies the DTLS fingerprint and the HTTPS certificate.
ENGINES = ("ffmpeg", "aiortc")
# How the ffmpeg engine reads the camera. lean: the pusher's own RTSP/TCP reader, batched reads
# (the default; rtsps:// always goes to FFmpeg); ffmpeg: FFmpeg's RTSP demuxer, for a camera
# the lean reader cannot talk to. The aiortc engine always uses FFmpeg's demuxer.
READERS = ("lean", "ffmpeg")


class ConfigError(ValueError):
    """A missing or malformed setting; the message never contains a secret."""


@dataclass(frozen=True, slots=True)
class PusherConfig:
    rtsp_url: str = field(repr=False)
    whip_url: str = field(repr=False)
    whip_token: str = field(repr=False)
    camera_id: str = ""
    rtsp_open_timeout_s: float = 10.0
    rtsp_read_timeout_s: float = 5.0
    whip_timeout_s: float = 10.0
    ice_connect_timeout_s: float = 15.0
    stats_interval_s: float = 10.0
    ice_servers: tuple[str, ...] = ()
    engine: str = "ffmpeg"  # one of ENGINES
    rtsp_reader: str = "lean"  # one of READERS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PusherConfig:
        env = with_value_files(with_env_file(os.environ if env is None else env))
        rtsp = _required(env, "RTSP_URL")
        whip = _required(env, "WHIP_URL")
        if urlsplit(rtsp).scheme not in ("rtsp", "rtsps"):
            raise ConfigError("RTSP_URL must be an rtsp:// or rtsps:// URL")
        if urlsplit(whip).scheme not in ("http", "https") or not urlsplit(whip).hostname:
            raise ConfigError("WHIP_URL must be an http:// or https:// URL")
        engine = env.get("PUSHER_ENGINE", "").strip().lower() or "ffmpeg"
        if engine not in ENGINES:
            raise ConfigError(f"PUSHER_ENGINE must be one of {', '.join(ENGINES)}, got {engine!r}")
        reader = env.get("PUSHER_RTSP_READER", "").strip().lower() or "lean"
        if reader not in READERS:
            choices = ", ".join(READERS)
            raise ConfigError(f"PUSHER_RTSP_READER must be one of {choices}, got {reader!r}")
        servers = tuple(
            s.strip() for s in env.get("PUSHER_ICE_SERVERS", "").split(",") if s.strip()
        )
        return cls(
            rtsp_url=rtsp,
            whip_url=whip,
            whip_token=env.get("WHIP_TOKEN", ""),
            camera_id=env.get("CAMERA_ID", ""),
            rtsp_open_timeout_s=_seconds(env, "PUSHER_RTSP_OPEN_TIMEOUT_SECONDS", 10.0),
            rtsp_read_timeout_s=_seconds(env, "PUSHER_RTSP_READ_TIMEOUT_SECONDS", 5.0),
            whip_timeout_s=_seconds(env, "PUSHER_WHIP_TIMEOUT_SECONDS", 10.0),
            ice_connect_timeout_s=_seconds(env, "PUSHER_ICE_TIMEOUT_SECONDS", 15.0),
            stats_interval_s=_seconds(env, "PUSHER_STATS_INTERVAL_SECONDS", 10.0),
            ice_servers=servers,
            engine=engine,
            rtsp_reader=reader,
        )


ENV_FILE = "PUSHER_ENV_FILE"


def with_env_file(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env`` plus the ``KEY='value'`` lines of the file ``$PUSHER_ENV_FILE`` names, which win.

    On a Swarm the orchestrator keeps the camera credentials and the WHIP token in a secret
    mounted as that file, so they never appear in the service spec. POSIX shell quoting, as
    ``shlex.quote`` writes it; ``#`` starts a comment."""
    path = env.get(ENV_FILE, "").strip()
    if not path:
        return env
    try:
        text = Path(path).read_text(encoding="utf-8")
        items = shlex.split(text, comments=True)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{ENV_FILE} could not be read ({type(exc).__name__})") from None
    merged = dict(env)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"{ENV_FILE} holds something that is not KEY=value")
        merged[key] = value
    return merged


FILE_VARIABLES = ("RTSP_URL", "WHIP_URL", "WHIP_TOKEN")


def with_value_files(env: Mapping[str, str]) -> Mapping[str, str]:
    """``RTSP_URL_FILE``, ``WHIP_URL_FILE``, ``WHIP_TOKEN_FILE``: each names a file that holds
    the value (one trailing newline dropped), as Docker and Swarm secrets are mounted. A
    ``<NAME>_FILE`` and ``<NAME>`` both set is refused: which one is meant is unclear."""
    merged = dict(env)
    for name in FILE_VARIABLES:
        path = env.get(f"{name}_FILE", "").strip()
        if not path:
            continue
        if env.get(name, "").strip():
            raise ConfigError(f"set {name} or {name}_FILE, not both")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}_FILE could not be read ({type(exc).__name__})") from None
        merged[name] = text[:-1] if text.endswith("\n") else text
    return merged


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name} must be between 0 and 3600 seconds, got {raw!r}")
    return value
