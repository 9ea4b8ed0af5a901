"""The one exception hierarchy of the service.

::

    OrchestratorError
    ├── InvalidInput                 bad identifier or argument (HTTP 400/422)
    │   └── InvalidBody              a request body that is not parseable JSON (422)
    ├── BodyTooLarge                 a request body over its route's cap (413)
    ├── BodyTimeout                  a request body that did not arrive in time (408)
    ├── NotFound
    │   ├── CameraNotFound           unknown camera (404)
    │   └── ReservationNotFound      unknown or expired lease (404)
    ├── CameraDisabled               camera exists but is disabled (409)
    ├── Unauthorized                 no or unknown API key (401)
    ├── Forbidden                    the key's role or sources do not allow it (403)
    ├── QuotaExceeded                a source or the TOTAL limit is full (429)
    ├── LimitBelowUsage              a new limit would sit below live usage (409)
    ├── ScriptProtocolError          a Lua script answered something unknown (a bug)
    ├── ContainerConflict            a pusher already holds the camera's name; the lifecycle
    │                                decides (defined with the workload model,
    │                                domain/containers.py)
    ├── RuntimeRejected              the runtime refused a request (bad image or config), or
    │                                the lifecycle refused the holder of a name
    └── TemporaryError               may succeed later; carries ``retry_after_seconds``
        ├── StoreUnavailable         Valkey unreachable or timing out (503)
        ├── RuntimeUnavailable       the runtime (Docker engine) unreachable
        └── LiveKitUnavailable       LiveKit unreachable or timing out

Third-party errors (redis, docker, livekit) are translated at their adapter with
``raise ... from exc`` and never leak past it.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error this service raises on purpose."""

    code = "INTERNAL_ERROR"


class InvalidInput(OrchestratorError):
    code = "VALIDATION_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidBody(InvalidInput):
    """Not parseable JSON: bad syntax or UTF-8, an integer over 4300 digits, nesting too deep."""

    code = "INVALID_BODY"


class BodyTooLarge(OrchestratorError):
    code = "BODY_TOO_LARGE"


class BodyTimeout(OrchestratorError):
    code = "BODY_TIMEOUT"


class NotFound(OrchestratorError):
    code = "NOT_FOUND"


class CameraNotFound(NotFound):
    code = "CAMERA_NOT_FOUND"


class ReservationNotFound(NotFound):
    code = "RESERVATION_NOT_FOUND"


class CameraDisabled(OrchestratorError):
    code = "CAMERA_DISABLED"


class Unauthorized(OrchestratorError):
    code = "UNAUTHORIZED"


class Forbidden(OrchestratorError):
    code = "FORBIDDEN"


class QuotaExceeded(OrchestratorError):
    """``scope`` is ``"SOURCE"`` (the agency's own limit) or ``"TOTAL"`` (the global one)."""

    code = "AGENCY_LIMIT_EXCEEDED"

    def __init__(self, *, source: str, scope: str, current: int, limit: int) -> None:
        super().__init__(f"{scope.lower()} limit reached for {source}: {current}/{limit}")
        self.source = source
        self.scope = scope
        self.current = current
        self.limit = limit


class LimitBelowUsage(OrchestratorError):
    code = "LIMIT_BELOW_USAGE"

    def __init__(self, *, name: str, current: int, limit: int) -> None:
        super().__init__(f"limit {limit} for {name} is below its live usage {current}")
        self.current = current
        self.limit = limit


class ScriptProtocolError(OrchestratorError):
    code = "SCRIPT_PROTOCOL_ERROR"


class TemporaryError(OrchestratorError):
    """An error that may go away; ``retry_after_seconds`` hints when to try again."""

    code = "SERVICE_UNAVAILABLE"
    retry_after_seconds: float = 1.0
    dependency = "unknown"  # the ``cctv_dependency_errors_total`` label


class StoreUnavailable(TemporaryError):
    dependency = "valkey"


class RuntimeUnavailable(TemporaryError):
    """The pusher runtime did not answer; ``dependency`` names it (``docker``)."""

    dependency = "docker"

    def __init__(self, message: str, *, runtime: str = "docker") -> None:
        super().__init__(message)
        self.dependency = runtime


class LiveKitUnavailable(TemporaryError):
    dependency = "livekit"


class RuntimeRejected(OrchestratorError):
    """The runtime answered a request with a permanent error (missing image, bad config), or
    the lifecycle refused what holds a pusher's name (not ours, a newer generation)."""

    code = "RUNTIME_REJECTED"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LiveKitRejected(OrchestratorError):
    """LiveKit answered a request with a permanent Twirp error (bad request, auth, grants)."""

    code = "LIVEKIT_REJECTED"

    def __init__(self, message: str, *, code: str, status: int | None) -> None:
        super().__init__(message)
        self.twirp_code = code
        self.status = status


class WebhookRejected(OrchestratorError):
    """A LiveKit webhook failed verification (signature, body hash, age) or is malformed."""

    code = "WEBHOOK_REJECTED"
