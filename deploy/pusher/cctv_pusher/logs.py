"""Structured log lines (one JSON object per line on stderr) that never carry a secret.

Camera URLs hold credentials in their userinfo or query, and FFmpeg puts the URL it failed on
into its error messages, so every string that reaches a log line passes the :class:`Redactor`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from .redact import MASK, Redactor, redact_url, url_secrets

__all__ = ["MASK", "Log", "Redactor", "safe_url", "url_secrets"]

# One redaction for the service and the pusher: ``redact.py`` is a verbatim copy of the
# service's ``orchestrator/domain/redact.py`` (the image cannot import the service; a unit test
# keeps the two identical).
safe_url = redact_url


class Log:
    def __init__(self, redact: Redactor, camera_id: str = "", stream: TextIO | None = None):
        self._redact = redact
        self._camera_id = camera_id
        self._stream = stream

    def __call__(self, level: str, event: str, /, **fields: object) -> None:
        """One line: ``ts``, ``level`` (severity), ``event``, ``camera_id``, then ``fields``.

        A field may replace the severity: the ``codec`` event's ``level`` is the H.264 level
        (``"4.0"``), which is what the orchestrator reads from it."""
        record: dict[str, object] = {"ts": round(time.time(), 3), "level": level, "event": event}
        if self._camera_id:
            record["camera_id"] = self._camera_id
        for key, value in fields.items():
            record[key] = self._clean(value)
        stream = self._stream or sys.stderr
        stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        stream.flush()

    def info(self, event: str, /, **fields: object) -> None:
        self("info", event, **fields)

    def error(self, event: str, /, **fields: object) -> None:
        self("error", event, **fields)

    def _clean(self, value: object) -> object:
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return self._redact(str(value))
