"""Map every error to JSON with a stable ``code`` (the REST contract). Routes only raise."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import (
    BodyTimeout,
    BodyTooLarge,
    CameraDisabled,
    Forbidden,
    InvalidBody,
    InvalidInput,
    LimitBelowUsage,
    NotFound,
    OrchestratorError,
    QuotaExceeded,
    TemporaryError,
    Unauthorized,
    WebhookRejected,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[OrchestratorError], int]] = [
    (InvalidInput, 422),
    (BodyTooLarge, 413),
    (BodyTimeout, 408),
    (Unauthorized, 401),
    (WebhookRejected, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (CameraDisabled, 409),
    (LimitBelowUsage, 409),
    (QuotaExceeded, 429),
    (TemporaryError, 503),
]
HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHORIZED"}
PARSE_FAILURES: dict[type, str] = {  # the cause FastAPI chains to its 400
    UnicodeDecodeError: "not UTF-8",
    RecursionError: "nested too deeply",
    ValueError: "a number too long (over 4300 digits)",
}
QUOTA_AR = "تم بلوغ الحد الأقصى لعدد البثوث المسموح بها لهذه الجهة ({current}/{limit})"


def error_json(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse({"error": body}, status_code=status)


def status_of(exc: OrchestratorError) -> int:
    return next((s for cls, s in STATUS if isinstance(exc, cls)), 500)


def early_answer(exc: OrchestratorError) -> JSONResponse:
    """An answer given before the request body was read: the connection closes after it
    (unread body bytes must never be taken for the next request)."""
    response = error_json(status_of(exc), exc.code, str(exc))
    response.headers["Connection"] = "close"
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def invalid_body(reason: str) -> JSONResponse:
    exc = InvalidBody(f"request body is not valid JSON: {reason}")
    return error_json(status_of(exc), exc.code, str(exc))


def install(app: FastAPI, *, quota_retry_after_seconds: int) -> None:
    @app.exception_handler(OrchestratorError)
    async def orchestrator_error(request: Request, exc: OrchestratorError) -> JSONResponse:
        services = getattr(request.app.state, "services", None)
        if services is not None:
            services.metrics.dependency_error(exc)
        status = status_of(exc)
        if status == 500:
            log.error("internal error", extra={"error": repr(exc), "code": exc.code})
            return error_json(500, "INTERNAL_ERROR", "internal error")
        if isinstance(exc, QuotaExceeded):
            message = (
                f"{exc.scope.lower()} stream limit reached for {exc.source} "
                f"({exc.current}/{exc.limit})"
            )
            response = error_json(
                429,
                exc.code,
                message,
                message_en=message,
                message_ar=QUOTA_AR.format(current=exc.current, limit=exc.limit),
                source=exc.source,
                current=exc.current,
                limit=exc.limit,
                scope=exc.scope,
            )
            response.headers["Retry-After"] = str(quota_retry_after_seconds)
            return response
        response = error_json(status, exc.code, str(exc), field=getattr(exc, "field", None))
        if isinstance(exc, TemporaryError):
            response.headers["Retry-After"] = str(math.ceil(exc.retry_after_seconds))
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # FastAPI's JSONDecodeError, loc (body, pos)
            reason = first.get("ctx", {}).get("error", "syntax error")
            return invalid_body(f"{reason} at byte {first['loc'][-1]}")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid input')}" if where else "invalid input"
        return error_json(422, "VALIDATION_ERROR", message, field=where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's only 400: a body json.loads raised on
            return invalid_body(PARSE_FAILURES.get(type(exc.__cause__), "not parseable"))
        code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        response = error_json(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"error": type(exc).__name__})
        return error_json(500, "INTERNAL_ERROR", "internal error")
