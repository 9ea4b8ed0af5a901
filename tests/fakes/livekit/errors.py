"""Failures the fake raises internally, each mapped to the wire shape the real server uses.

```
Exception
├── TwirpFailure   -> Twirp JSON error body {"code","msg"[,"meta"]}
│   └── NoResponse -> `unavailable` "no response from servers", answered only after the psrpc
│                     affinity timeout (`no_response_seconds`): an RPC no node claims
├── AuthFailure    -> 401 text/plain from the auth middleware
├── WhipFailure    -> plain-text WHIP error with a psrpc-derived status
└── JoinRejected   -> raised by the test helper `FakeLiveKit.join` (not wire)
```
"""

from __future__ import annotations

from collections.abc import Mapping

# twirp.ServerHTTPStatusFromErrorCode.
TWIRP_STATUS: Mapping[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,  # Twirp v8.1.3; not 403
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}


class TwirpFailure(Exception):
    """A Twirp error: written as JSON with the status of its code."""

    def __init__(self, code: str, msg: str, meta: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    @property
    def status(self) -> int:
        return TWIRP_STATUS.get(self.code, 500)

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.meta:
            out["meta"] = self.meta
        return out


class NoResponse(TwirpFailure):
    """psrpc `ErrNoResponse`: the RPC went to a topic no server claimed."""

    def __init__(self) -> None:
        super().__init__("unavailable", "no response from servers")


def permissions_denied() -> TwirpFailure:
    """What every failed grant check returns (`twirpAuthError`)."""
    return TwirpFailure("unauthenticated", "permissions denied")


def bad_route(msg: str, method: str, path: str) -> TwirpFailure:
    return TwirpFailure("bad_route", msg, {"twirp_invalid_route": f"{method} {path}"})


class AuthFailure(Exception):
    """Rejected by the API-key middleware before Twirp: 401 with a plain-text body."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class WhipFailure(Exception):
    """A WHIP request refused with a plain-text body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text}")
        self.status = status
        self.text = text


class JoinRejected(Exception):
    """`FakeLiveKit.join` refused a simulated client connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
