"""Viewer tokens, minted locally with ``livekit-api`` (no LiveKit call on the request path).

Every grant is set explicitly: the library's defaults would let a viewer publish.
"""

from __future__ import annotations

import time
from datetime import timedelta

from livekit import api

from orchestrator.domain.ids import room_name, viewer_identity


class TokenMinter:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self._api_key = api_key
        self._api_secret = api_secret

    def viewer_token(
        self, reservation_id: str, user_id: str, camera_id: str, expires_at_ms: int
    ) -> str:
        """A subscribe-only token for ``viewer_<reservation_id>`` in ``camera_<camera_id>``."""
        ttl_seconds = max(1.0, expires_at_ms / 1000 - time.time())
        grants = api.VideoGrants(
            room_join=True,
            room=room_name(camera_id),
            can_subscribe=True,
            can_publish=False,
            can_publish_data=False,
            can_publish_sources=[],
            can_update_own_metadata=False,
            room_create=False,
            room_list=False,
            room_record=False,
            room_admin=False,
            ingress_admin=False,
            hidden=False,
            recorder=False,
            agent=False,
        )
        return (
            api.AccessToken(self._api_key, self._api_secret)
            .with_identity(viewer_identity(reservation_id))
            .with_name(user_id)
            .with_grants(grants)
            .with_ttl(timedelta(seconds=ttl_seconds))
            .to_jwt()
        )
