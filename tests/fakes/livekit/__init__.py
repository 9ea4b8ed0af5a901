"""A wire-level fake LiveKit server for tests: Twirp RoomService/Ingress, WHIP, webhooks.

Drive it only with the real `livekit-api` client and real HTTP; see `server.FakeLiveKit`.
The facts it reproduces are in /work/shared/docs/livekit-wire.md (cited by section).
"""

from .errors import JoinRejected, TwirpFailure
from .server import FakeLiveKit
from .webhooks import SignedWebhook, WebhookAttempt, WebhookPolicy, encode_event, sign_event

__all__ = [
    "FakeLiveKit",
    "JoinRejected",
    "SignedWebhook",
    "TwirpFailure",
    "WebhookAttempt",
    "WebhookPolicy",
    "encode_event",
    "sign_event",
]
