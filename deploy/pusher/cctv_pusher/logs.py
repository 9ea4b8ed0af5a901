"""Structured log lines (one JSON object per line on stderr) that never carry a secret.

Camera URLs hold credentials in their userinfo or query, and FFmpeg puts the URL it failed on
into its error messages, so every string that reaches a log line passes the :class:`Redactor`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no userinfo, no query, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret: userinfo, password and query values."""
    parts = urlsplit(url)
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, unquote(userinfo)]
    found += [value for _, value in parse_qsl(parts.query) if value]
    return found


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a URL is masked whole before its password is.
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


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
