"""Token checks, emulating the server's API-key middleware and grant checks.

docs/architecture.md, "LiveKit facts": no header -> no grants (each RPC then fails with 401 JSON
`unauthenticated` "permissions denied"); a header without `Bearer ` or a token that does not
verify -> 401 text/plain. Tokens are HS256, `iss` must be the API key, `exp` is required, and the
leeway is 60 s. Join tokens are validated as LiveKit does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from google.protobuf import json_format
from livekit.protocol.models import ParticipantInfo, ParticipantPermission
from livekit.protocol.room import CreateRoomRequest, RoomConfiguration

from .errors import AuthFailure, JoinRejected, permissions_denied
from .ids import PARTICIPANT, new_id

LEEWAY_SECONDS = 60

_KINDS = {
    "": ParticipantInfo.Kind.STANDARD,
    "standard": ParticipantInfo.Kind.STANDARD,
    "ingress": ParticipantInfo.Kind.INGRESS,
    "egress": ParticipantInfo.Kind.EGRESS,
    "sip": ParticipantInfo.Kind.SIP,
    "agent": ParticipantInfo.Kind.AGENT,
}


@dataclass(frozen=True)
class Claims:
    """Verified token claims; `video` keeps the wire's camelCase grant names."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def video(self) -> Mapping[str, Any]:
        video = self.raw.get("video")
        return video if isinstance(video, dict) else {}

    def grant(self, name: str) -> bool:
        return self.video.get(name) is True

    def text(self, name: str) -> str:
        value = self.raw.get(name)
        return value if isinstance(value, str) else ""


NO_GRANTS = Claims()


def verify_token(token: str, api_key: str, api_secret: str) -> Claims:
    """Verify a JWT as `protocol/auth/verifier.go` does; raise `AuthFailure` with its text."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthFailure("invalid authorization token") from exc
    if unverified.get("iss") != api_key:
        raise AuthFailure("invalid API key")
    try:
        claims = jwt.decode(
            token,
            api_secret,
            algorithms=["HS256"],
            issuer=api_key,
            options={"require": ["exp"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise AuthFailure(f"invalid authorization token: {exc}") from exc
    return Claims(claims)


def authenticate(
    header: str | None, query_token: str | None, api_key: str, api_secret: str
) -> Claims:
    """The middleware: no credentials pass through with no grants."""
    if header is None:
        if not query_token:
            return NO_GRANTS
        return verify_token(query_token, api_key, api_secret)
    if not header.startswith("Bearer "):
        raise AuthFailure("invalid authorization header. Must start with Bearer ")
    return verify_token(header[len("Bearer ") :], api_key, api_secret)


def require(claims: Claims, grant: str) -> None:
    if not claims.grant(grant):
        raise permissions_denied()


def require_room_admin(claims: Claims, room: str) -> None:
    """`EnsureAdminPermission`: roomAdmin and the token's room equal to the request's."""
    if not claims.grant("roomAdmin") or claims.video.get("room", "") != room:
        raise permissions_denied()


def verify_join(token: str, api_key: str, api_secret: str) -> Claims:
    """Validate a client's join token: roomJoin, a non-empty identity and room."""
    try:
        claims = verify_token(token, api_key, api_secret)
    except AuthFailure as exc:
        raise JoinRejected(401, exc.text) from exc
    if not claims.grant("roomJoin"):
        raise JoinRejected(401, "permissions denied")
    if not claims.text("sub"):
        raise JoinRejected(400, "identity cannot be empty")
    if not claims.video.get("room"):
        raise JoinRejected(400, "room name cannot be empty")
    return claims


def participant_from(claims: Claims, now: float) -> ParticipantInfo:
    """The participant a verified join token becomes (identity, name, kind, permissions)."""
    video = claims.video
    participant = ParticipantInfo(
        sid=new_id(PARTICIPANT),
        identity=claims.text("sub"),
        name=claims.text("name"),
        metadata=claims.text("metadata"),
        joined_at=int(now),
        joined_at_ms=int(now * 1000),
        version=1,
        kind=_KINDS.get(claims.text("kind"), ParticipantInfo.Kind.STANDARD),
        permission=ParticipantPermission(
            can_subscribe=video.get("canSubscribe") is True,
            can_publish=video.get("canPublish") is True,
            # an absent canPublishData defaults to canPublish (protocol/auth/grants.go)
            can_publish_data=video.get("canPublishData", video.get("canPublish")) is True,
            can_update_metadata=video.get("canUpdateOwnMetadata") is True,
            hidden=video.get("hidden") is True,
            recorder=video.get("recorder") is True,
            agent=video.get("agent") is True,
        ),
    )
    attributes = claims.raw.get("attributes")
    if isinstance(attributes, dict):
        participant.attributes.update({str(k): str(v) for k, v in attributes.items()})
    return participant


def room_request(claims: Claims) -> CreateRoomRequest | None:
    """The room a join with these claims creates: the token's `roomConfig`, if any."""
    config = claims.raw.get("roomConfig")
    if not isinstance(config, dict):
        return None
    parsed = json_format.ParseDict(config, RoomConfiguration(), ignore_unknown_fields=True)
    return CreateRoomRequest(
        name=str(claims.video.get("room", "")),
        empty_timeout=parsed.empty_timeout,
        departure_timeout=parsed.departure_timeout,
        max_participants=parsed.max_participants,
        metadata=parsed.metadata,
    )
