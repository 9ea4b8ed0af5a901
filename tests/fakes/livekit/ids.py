"""Identifier formats used by the real server (docs/architecture.md, "LiveKit facts").

IDs are a prefix plus 12 characters of the shortuuid base57 alphabet; a stream key has no prefix.
"""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

ROOM = "RM_"
PARTICIPANT = "PA_"
TRACK = "TR_"
INGRESS = "IN_"
EVENT = "EV_"
WHIP_RESOURCE = "WH_"


def new_id(prefix: str = "") -> str:
    """`prefix` + 12 random base57 characters (`guid.New`)."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(12))
