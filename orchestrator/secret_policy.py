"""Refuse to serve beyond loopback with secrets anyone could guess.

``make run`` binds 127.0.0.1 with LiveKit's development secret and a generated admin key: fine
on a laptop. Bound to any other address, the service refuses to start while LiveKit's secret
is its development default (``secret``) or any secret it holds is shorter than 32 bytes
(LiveKit's own minimum advice, and the point below which PyJWT warns for HS256).
"""

from __future__ import annotations

import ipaddress

from orchestrator.auth import KeyRing
from orchestrator.config import Settings

MIN_SECRET_BYTES = 32
LIVEKIT_DEV_SECRET = "secret"  # noqa: S105 - the value we refuse, not one we use


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def unsafe_secrets(settings: Settings, keyring: KeyRing) -> list[str]:
    """What makes the configuration unsafe off loopback, one line each (no secret in them)."""
    problems: list[str] = []
    livekit = settings.livekit_api_secret.get_secret_value()
    if livekit == LIVEKIT_DEV_SECRET:
        problems.append("LIVEKIT_API_SECRET is LiveKit's development secret")
    elif len(livekit.encode()) < MIN_SECRET_BYTES:
        problems.append(f"LIVEKIT_API_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
    admin = settings.admin_api_key
    if admin is not None and len(admin.get_secret_value().encode()) < MIN_SECRET_BYTES:
        problems.append(f"CCTV_ADMIN_API_KEY is shorter than {MIN_SECRET_BYTES} bytes")
    problems += [
        f"API key {name!r} (CCTV_API_KEYS_FILE) is shorter than {MIN_SECRET_BYTES} bytes"
        for name in keyring.short_keys(MIN_SECRET_BYTES)
    ]
    return problems
