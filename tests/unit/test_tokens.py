"""The fast minter must produce what ``livekit-api`` would, and pass its verifier."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from livekit import api

from orchestrator.livekit.tokens import TokenMinter, viewer_grants
from tests.harness.constants import LIVEKIT_KEY, LIVEKIT_SECRET, WRONG_SECRET


@pytest.mark.parametrize("room_timeouts", [None, (120, 30)])
def test_minted_token_equals_the_library_token(room_timeouts: tuple[int, int] | None) -> None:
    expires_ms = int(time.time() * 1000) + 600_000
    minter = TokenMinter(LIVEKIT_KEY, LIVEKIT_SECRET, room_timeouts)
    ours = minter.viewer_token("r1", "operator 7", "cam-1", expires_ms)
    library = (
        api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET)
        .with_identity("viewer_r1")
        .with_name("operator 7")
        .with_grants(viewer_grants("cam-1"))
        .with_ttl(timedelta(seconds=expires_ms / 1000 - time.time()))
    )
    if room_timeouts is not None:  # LiveKit creates the room with these at the first join
        empty, departure = room_timeouts
        config = api.RoomConfiguration(empty_timeout=empty, departure_timeout=departure)
        library = library.with_room_config(config)
    theirs = library.to_jwt()
    assert jwt.get_unverified_header(ours) == jwt.get_unverified_header(theirs)
    decoded_ours = jwt.decode(
        ours, LIVEKIT_SECRET, algorithms=["HS256"], options={"verify_nbf": False}
    )
    decoded_theirs = jwt.decode(theirs, LIVEKIT_SECRET, algorithms=["HS256"])
    for claims in (decoded_ours, decoded_theirs):
        assert abs(claims.pop("exp") - expires_ms // 1000) <= 1
        assert abs(claims.pop("nbf") - time.time()) <= 2
    assert decoded_ours == decoded_theirs


def test_minted_token_passes_the_verifier_with_explicit_grants() -> None:
    expires_ms = int(time.time() * 1000) + 600_000
    token = TokenMinter(LIVEKIT_KEY, LIVEKIT_SECRET).viewer_token("r2", "u", "cam-9", expires_ms)
    claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(token)
    assert claims.identity == "viewer_r2"
    assert claims.name == "u"
    video = claims.video
    assert video is not None
    assert (video.room, video.room_join, video.can_subscribe) == ("camera_cam-9", True, True)
    assert (video.can_publish, video.can_publish_data, video.room_admin) == (False, False, False)
    assert video.can_publish_sources == []


def test_wrong_secret_is_refused() -> None:
    token = TokenMinter(LIVEKIT_KEY, LIVEKIT_SECRET).viewer_token(
        "r3", "u", "cam-1", int(time.time() * 1000) + 60_000
    )
    verifier = api.TokenVerifier(LIVEKIT_KEY, WRONG_SECRET)
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(token)
