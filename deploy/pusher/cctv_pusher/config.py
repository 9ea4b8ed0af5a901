"""The pusher's inputs, from the environment the orchestrator sets (see ``--help``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PusherConfig:
        env = os.environ if env is None else env
        rtsp = _required(env, "RTSP_URL")
        whip = _required(env, "WHIP_URL")
        if urlsplit(rtsp).scheme not in ("rtsp", "rtsps"):
            raise ConfigError("RTSP_URL must be an rtsp:// or rtsps:// URL")
        if urlsplit(whip).scheme not in ("http", "https") or not urlsplit(whip).hostname:
            raise ConfigError("WHIP_URL must be an http:// or https:// URL")
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
        )


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
