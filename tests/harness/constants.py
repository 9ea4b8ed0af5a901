"""Every constant the tests share, defined once.

Keys and secrets are at least 32 bytes, so no service started with them refuses them and
PyJWT does not warn. The in-process app and the ``serve`` process get the same API keys
(:data:`API_KEYS`), through the same keys file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

# --- API keys: one admin, one viewer per agency, one viewer of every source -----------------
ADMIN_KEY = "test-admin-key-0123456789abcdef0123456789"
METRO_KEY = "test-metro-key-0123456789abcdef0123456789"
POLICE_KEY = "test-police-key-0123456789abcdef012345678"
STAR_KEY = "test-star-key-0123456789abcdef01234567890"
API_KEYS: list[dict[str, Any]] = [
    {"name": "admin", "role": "admin", "key": ADMIN_KEY},
    {"name": "metro-dashboard", "role": "viewer", "sources": ["METRO"], "key": METRO_KEY},
    {"name": "police-dashboard", "role": "viewer", "sources": ["DUBAI_POLICE"], "key": POLICE_KEY},
    {"name": "star-dashboard", "role": "viewer", "sources": ["*"], "key": STAR_KEY},
]
USER = "operator-1"  # the user_id of the harness's reserves

# --- LiveKit: the service's key and secret, which the wire fake also holds -----------------
LIVEKIT_KEY = "APItestKey"
LIVEKIT_SECRET = "test-livekit-secret-0123456789abcdefghij"
WRONG_SECRET = "not-the-livekit-secret-0123456789abcdefgh"  # as long, but not LiveKit's
WEBHOOK_PATH = "/api/v1/livekit/webhook"
TEST_ROOM = "camera_7"  # a camera's room and its publisher, for the fake's own tests
TEST_PUBLISHER = "camera_7_publisher"

# --- the reservation store -------------------------------------------------------------------
LIMITS = (("DUBAI_POLICE", 50), ("METRO", 30), ("BUS", 20), ("OTHER", 400), ("TOTAL", 500))

# Path parameters that pass validation, for requests built from route templates.
SAMPLE_IDS = {"reservation_id": "r" * 22, "camera_id": "cam-1", "source": "METRO"}
