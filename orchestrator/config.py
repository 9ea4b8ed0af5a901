"""Service settings, read from the environment (the names deployments already use are kept).

Settings are grouped by concern and carry their unit in the name. Unprefixed names
(``VALKEY_URL``, ``LIVEKIT_*``, ``DOCKER_HOST``) are the ones deployments already use; every
other setting is ``CCTV_<NAME>``. The two secrets may instead come from files (Docker and Swarm
secrets): see :data:`SECRET_FILE_VARIABLES`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from orchestrator.domain.containers import DEFAULT_INSTANCE, INSTANCE_PATTERN, parse_memory
from orchestrator.domain.ids import TOTAL, validate_source
from orchestrator.errors import InvalidInput

DAY_SECONDS = 86400  # the scripts refuse durations beyond a day (ms arguments)

DEFAULT_SOURCE_LIMITS: dict[str, int] = {
    "DUBAI_POLICE": 50,
    "METRO": 30,
    "BUS": 20,
    "OTHER": 400,
    TOTAL: 500,
}

# Secrets read from files (``/run/secrets/<name>`` for Docker and Swarm secrets): each key is a
# variable naming the file, each value the variable it replaces and the field it sets. Setting
# both variables of a pair is an error; line endings at the end of the file are dropped.
SECRET_FILE_VARIABLES: dict[str, tuple[str, str]] = {
    "CCTV_ADMIN_API_KEY_FILE": ("CCTV_ADMIN_API_KEY", "admin_api_key"),
    "LIVEKIT_API_SECRET_FILE": ("LIVEKIT_API_SECRET", "livekit_api_secret"),
}


def read_secret_file(variable: str, path: Path) -> str:
    """The secret held in ``path``, named by ``variable``. Errors never quote the file."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingsError(f"{variable}: cannot read {path}: {reason}") from None
    if not value:
        raise SettingsError(f"{variable}: {path} is empty")
    return value


class SecretFilesSource(PydanticBaseSettingsSource):
    """The settings of :data:`SECRET_FILE_VARIABLES` whose file variable is set."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for file_variable, (variable, field) in SECRET_FILE_VARIABLES.items():
            path = os.environ.get(file_variable)
            if not path:
                continue
            if os.environ.get(variable):
                raise SettingsError(f"set {variable} or {file_variable}, not both")
            values[field] = read_secret_file(file_variable, Path(path))
        return values


class Settings(BaseSettings):
    """Every tunable of the service. See ``docs/configuration.md``."""

    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, and the secret files after the environment."""
        secret_files = SecretFilesSource(settings_cls)
        return init_settings, env_settings, secret_files, dotenv_settings, file_secret_settings

    # --- Valkey -------------------------------------------------------------------------
    valkey_url: str | None = Field(
        default=None, validation_alias=AliasChoices("VALKEY_URL", "valkey_url")
    )
    data_dir: Path = Path("./data")
    valkey_timeout_seconds: float = 0.5

    # --- HTTP ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8086
    # Hostile clients (docs/configuration.md, "Request limits"): bodies over the cap get 413
    # before anything parses them (the LiveKit webhook's cap is 256 KiB), request headers must
    # arrive within the header timeout and under the header cap, bodies within the body timeout.
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    http_max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Idle keep-alive connections close after this. Longer than the idle timeouts of client
    # pools and proxies in front (httpx 5 s, nginx 60 s upstream, cloud balancers 60 s), so a
    # client never reuses a connection the service is closing at that moment.
    http_keep_alive_seconds: int = Field(default=75, ge=1, le=3600)

    # --- leases and quotas --------------------------------------------------------------
    lease_seconds: float = Field(default=60.0, le=DAY_SECONDS)
    stats_max_age_seconds: float = Field(default=0.5, ge=0, le=60)
    drain_grace_seconds: float = Field(default=3.0, le=DAY_SECONDS)
    claim_seconds: float = Field(default=30.0, le=DAY_SECONDS)
    expire_batch_size: int = 200
    sweep_interval_seconds: float = 1.0
    source_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_SOURCE_LIMITS))
    default_source_limit: int = 0

    # --- the pusher runtime -------------------------------------------------------------
    # What runs pushers (docs/architecture.md, "The runtime port"): ``docker`` (one engine)
    # or ``swarm`` (services on a Docker Swarm; ``DOCKER_HOST`` names a manager, docs/swarm.md).
    runtime: Literal["docker", "swarm"] = "docker"
    # The deployment instance label every pusher carries; listings, events and the reconcile
    # pass see only this instance's pushers, so deployments sharing an engine never touch
    # each other's.
    instance: str = Field(default=DEFAULT_INSTANCE, pattern=INSTANCE_PATTERN)

    # --- Docker -----------------------------------------------------------------------
    docker_host: str | None = Field(
        default=None, validation_alias=AliasChoices("DOCKER_HOST", "docker_host")
    )
    docker_timeout_seconds: float = 10.0
    docker_workers: int = Field(default=32, ge=1, le=256)

    # --- Swarm (CCTV_RUNTIME=swarm; docs/swarm.md) -------------------------------------
    # Placement constraints (``node.labels.cctv.pushers==true``) and preferences
    # (``spread=node.labels.zone``), as JSON lists.
    swarm_constraints: list[str] = Field(default_factory=list)
    swarm_preferences: list[str] = Field(default_factory=list)
    # What the scheduler reserves per pusher (limits are CCTV_PUSHER_CPUS / _MEMORY).
    swarm_reserve_cpus: float = Field(default=0.05, ge=0, le=64)
    swarm_reserve_memory: str = "64m"
    # How often task state is read from the manager (it emits no task events).
    swarm_poll_seconds: float = Field(default=0.5, gt=0, le=1.0)

    # --- pushers --------------------------------------------------------------
    pushers_enabled: bool = True
    pusher_image: str = "cctv-whip-pusher:latest"
    pusher_network: str = "bridge"
    pusher_memory: str = "256m"
    pusher_cpus: float = Field(default=1.0, gt=0, le=64)
    pusher_stop_timeout_seconds: int = Field(default=10, ge=1, le=300)
    # ffmpeg: FFmpeg's WHIP muxer (0.4 of the CPU; no DTLS/HTTPS identity checks);
    # aiortc: verifies both, for ingress paths over untrusted networks. See the pusher README.
    pusher_engine: Literal["ffmpeg", "aiortc"] = "ffmpeg"
    # How the ffmpeg engine reads cameras: lean (its own RTSP/TCP reader, batched reads) or
    # ffmpeg (FFmpeg's demuxer), for a camera the lean one cannot talk to.
    pusher_rtsp_reader: Literal["lean", "ffmpeg"] = "lean"
    whip_url: str = ""
    whip_token: SecretStr | None = None
    pusher_tick_seconds: float = Field(default=0.25, gt=0)
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    restart_initial_seconds: float = Field(default=1.0, gt=0)
    restart_max_seconds: float = Field(default=60.0, gt=0)
    restart_stable_seconds: float = Field(default=60.0, ge=0)

    # --- camera registry ----------------------------------------------------------------
    cameras_file: Path | None = None

    # --- auth -------------------------------------------------------------------------
    admin_api_key: SecretStr | None = None  # or from a file: CCTV_ADMIN_API_KEY_FILE
    api_keys_file: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    quota_retry_after_seconds: int = 10

    # --- LiveKit ----------------------------------------------------------------------
    livekit_url: str = Field(
        default="ws://127.0.0.1:7880", validation_alias=AliasChoices("LIVEKIT_URL", "livekit_url")
    )
    # What browsers connect to (the reserve response's ``livekit_url``); unset: ``LIVEKIT_URL``.
    # The service itself only ever calls ``LIVEKIT_URL``, which may be an internal address.
    livekit_public_url: str | None = None
    livekit_api_key: str = Field(
        default="devkey", validation_alias=AliasChoices("LIVEKIT_API_KEY", "livekit_api_key")
    )
    livekit_api_secret: SecretStr = Field(  # or from a file: LIVEKIT_API_SECRET_FILE
        default=SecretStr("secret"),
        validation_alias=AliasChoices("LIVEKIT_API_SECRET", "livekit_api_secret"),
    )
    token_ttl_seconds: float = Field(default=600.0, le=DAY_SECONDS)
    token_refresh_seconds: float = Field(default=120.0, ge=0, le=DAY_SECONDS)
    # The server API (rooms, ingress, presence sync). Off: tokens only (tests, dry runs).
    livekit_enabled: bool = True
    livekit_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    livekit_attempts: int = Field(default=3, ge=1, le=10)
    livekit_sync_interval_seconds: float = Field(default=5.0, gt=0)
    livekit_list_rate_per_second: float = Field(default=20.0, gt=0)
    room_empty_timeout_seconds: int = Field(default=120, ge=1, le=86400)
    room_departure_timeout_seconds: int = Field(default=30, ge=1, le=86400)
    reconnect_grace_seconds: float = Field(default=15.0, ge=0, le=3600)
    webhook_max_age_seconds: float = Field(default=300.0, gt=0, le=300)

    @field_validator("source_limits")
    @classmethod
    def _check_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for source, limit in value.items():
            validate_source(source)
            if limit < 0:
                raise ValueError(f"limit for {source} must be >= 0")
        return value

    @field_validator("pusher_memory", "swarm_reserve_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        try:
            parse_memory(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("swarm_preferences")
    @classmethod
    def _preferences(cls, value: list[str]) -> list[str]:
        for item in value:
            strategy, _, descriptor = item.partition("=")
            if strategy != "spread" or not descriptor.strip():
                raise ValueError(f"{item!r}: a preference is spread=<node attribute>")
        return value

    @field_validator("lease_seconds", "drain_grace_seconds", "claim_seconds", "token_ttl_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("livekit_url", "livekit_public_url")
    @classmethod
    def _livekit_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError("must be a ws://, wss://, http:// or https:// URL")
        return value

    @property
    def pusher_memory_bytes(self) -> int:
        """``CCTV_PUSHER_MEMORY`` (``256m``) in bytes."""
        return parse_memory(self.pusher_memory)

    @property
    def browser_livekit_url(self) -> str:
        """The LiveKit URL handed to browsers: the public one when set, else the API URL."""
        return self.livekit_public_url or self.livekit_url

    def limit_for(self, source: str) -> int:
        """The configured default limit of ``source`` (a value in Valkey overrides it)."""
        return self.source_limits.get(source, self.default_source_limit)
