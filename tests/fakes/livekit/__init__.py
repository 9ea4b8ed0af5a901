"""A wire-level fake LiveKit server for tests: Twirp RoomService/Ingress, WHIP, webhooks.

Drive it only with the real `livekit-api` client and real HTTP; see `server.FakeLiveKit`, and
`control.py` for the test-control API. The facts it reproduces are in
/work/shared/docs/livekit-wire.md (cited by section), including the §9 corrections where the
real server is stricter than a naive fake: WHIP BUFFERING before PUBLISHING and the ERROR path
(§9.5), a second WHIP POST evicting the first (§9.6), WHIP DELETE/PATCH details (§9.7),
CreateRoom keeping a live room's timeouts (§9.9), JOINING and connection-aborted participants
(§9.10-11), store-only participants answering 503 (§9.2), retryable 408/503 Twirp errors (§9.3).

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
