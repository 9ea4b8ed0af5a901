"""Identifier rules and the names other systems rely on (docs/architecture.md).

Every camera id and source is checked here before it reaches a key, a label or a name.
"""

from __future__ import annotations

import re
import secrets

from orchestrator.errors import InvalidInput

# The one place of the id patterns: the API's ``pattern=`` strings are these.
ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"  # camera ids and sources
RESERVATION_PATTERN = r"^[A-Za-z0-9_-]{22,64}$"  # reservation ids (URL-safe tokens)
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # LiveKit webhook event ids
_ID = re.compile(ID_PATTERN)
_RESERVATION = re.compile(RESERVATION_PATTERN)
_ID_RULE = "1-64 characters of letters, digits, '.', '_' or '-'"
_RESERVATION_RULE = "22-64 URL-safe characters (letters, digits, '_' or '-')"

TOTAL = "TOTAL"
VIEWER_PREFIX = "viewer_"
ROOM_PREFIX = "camera_"
CONTAINER_PREFIX = "whip-pusher-"


def _check(kind: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidInput(f"{kind} must be {rule}", field=kind)
    return value


def validate_camera_id(value: str) -> str:
    return _check("camera_id", value, _ID, _ID_RULE)


def validate_source(value: str) -> str:
    """A source (agency) name, or ``TOTAL`` (the global limit)."""
    return _check("source", value, _ID, _ID_RULE)


def validate_lease_source(value: str) -> str:
    """A source a viewer may reserve under: never ``TOTAL``, which names the global limit (a
    lease under it would count against no agency and vanish from per-source stats)."""
    validate_source(value)
    if value == TOTAL:
        raise InvalidInput(f"source {TOTAL} names the global limit; reserve under an agency")
    return value


def validate_reservation_id(value: str) -> str:
    return _check("reservation_id", value, _RESERVATION, _RESERVATION_RULE)


def new_reservation_id() -> str:
    """128 random bits, URL-safe (22 characters), never starting with ``-`` or ``_``: an id
    that began with ``-`` would read as an option on the command line (``kick -abc...``)."""
    while True:
        rid = secrets.token_urlsafe(16)
        if rid[0].isalnum():
            return rid


def viewer_identity(reservation_id: str) -> str:
    return f"{VIEWER_PREFIX}{reservation_id}"


def room_name(camera_id: str) -> str:
    return f"{ROOM_PREFIX}{camera_id}"


def publisher_identity(camera_id: str) -> str:
    return f"{ROOM_PREFIX}{camera_id}_publisher"


def container_name(camera_id: str) -> str:
    return f"{CONTAINER_PREFIX}{camera_id}"


PUBLISHER_SUFFIX = "_publisher"


def camera_of_room(room: str) -> str | None:
    """``camera_<id>`` -> ``<id>``; None for any other room or an invalid id."""
    return _strip(room, ROOM_PREFIX, "", _ID)


def camera_of_publisher(identity: str) -> str | None:
    """``camera_<id>_publisher`` -> ``<id>``; None otherwise."""
    return _strip(identity, ROOM_PREFIX, PUBLISHER_SUFFIX, _ID)


def reservation_of_identity(identity: str) -> str | None:
    """``viewer_<reservation_id>`` -> ``<reservation_id>``; None otherwise."""
    return _strip(identity, VIEWER_PREFIX, "", _RESERVATION)


def _strip(value: str, prefix: str, suffix: str, pattern: re.Pattern[str]) -> str | None:
    if not value.startswith(prefix) or not value.endswith(suffix):
        return None
    inner = value[len(prefix) : len(value) - len(suffix)]
    return inner if pattern.fullmatch(inner) else None
