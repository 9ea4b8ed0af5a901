"""A wire-level fake LiveKit server for tests: Twirp RoomService/Ingress, WHIP, webhooks.

Drive it only with the real `livekit-api` client and real HTTP; see `server.FakeLiveKit`, and
`control.py` for the test-control API. The facts it reproduces are the ones the service relies
on (docs/architecture.md, "LiveKit facts"), read from LiveKit's own sources, including where
the real server is stricter than a naive fake: WHIP BUFFERING before PUBLISHING and the ERROR
path, a second WHIP POST evicting the first, WHIP DELETE/PATCH details, CreateRoom keeping a
live room's timeouts, JOINING and connection-aborted participants, store-only participants
answering 503, retryable 408/503 Twirp errors.

Module map: `server` (listener, wiring), `control` (test control), `twirp`/`rpc`/`auth` (the
API), `room_table`/`rooms` (rooms, participants), `ingresses`/`sessions`/`whip` (ingress and
WHIP), `events`/`webhooks` (webhooks), `faults` (timing, scripted errors, hang), `errors`, `ids`.
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
