"""Secrets never leave the service: the one place that makes URLs safe to show.

Cameras carry credentials in three places, and each is masked:

* the userinfo, whose password recorders accept with unencoded ``/ # ? @`` in it
  (``rtsp://admin:p@ss/w#rd?x@10.0.0.5/...``): the host follows the *last* ``@``, so the whole
  userinfo is masked even where ``urlsplit`` would take part of the password for the host;
* parameters named like credentials (``user=``, ``password=``, ``pwd=``, ``token=``, ...), in
  the path (``;user=admin;password=x;channel=1``, ``/user=admin&password=x&channel=1``) or the
  query: a value runs to the next ``;`` or ``&``, so ``/ ? # @`` inside it stay masked;
* the query and fragment, which are never shown.

When no host can be found after the last ``@`` (a URL too broken to read), or that ``@`` lies
inside a credential parameter's value, everything after the scheme is masked: no part of a
password is ever shown. A parameter value holding an unencoded ``;`` or ``&`` cannot be told
from the next parameter (the recorder could not either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import unquote

MASK = "***"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_AUTHORITY = re.compile(  # empty (``unix:///path``), a name, IPv4 or [IPv6]; then a port
    r"(?:(?P<host>\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9._~-]+)?\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>\d{0,5}))?)?"
)
_KEY = r"[A-Za-z0-9_.~-]"
_PARAM_KEY = re.compile(rf"(?<!{_KEY})({_KEY}+)=")  # from a key's start: linear time
_CREDENTIAL_WORD = re.compile(r"user|usr|login|pass|pwd|token|auth|key|secret|cred|sig", re.I)
_VALUE_END = re.compile(r"[;&]")
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s\"<>`]+")


class _Parts(NamedTuple):
    scheme: str
    userinfo: str | None  # everything before the last "@", or None without one
    readable: bool  # False: no host could be read; then ``tail`` is all after the scheme
    host: str
    port: str
    tail: str  # path, parameters, query and fragment as given


def _split(url: str) -> _Parts | None:
    """``None`` when ``url`` has no ``scheme://``."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    rest = url[scheme.end() :]
    at = rest.rfind("@")  # a password may hold "@", a host never does
    userinfo = rest[:at] if at >= 0 else None
    after = rest[at + 1 :]
    end = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    authority = _AUTHORITY.fullmatch(after[:end])
    # An "@" inside a credential parameter's value (``;password=p@ss``) may end a userinfo
    # or not: either way a part of a password would show, so nothing is read.
    in_value = any(start <= at < stop for start, stop in _credential_values(rest))
    if authority is None or in_value:
        return _Parts(scheme.group(1), userinfo, False, "", "", rest)
    host, port = authority["host"] or "", authority["port"] or ""
    return _Parts(scheme.group(1), userinfo, True, host, port, after[end:])


def _credential_values(text: str) -> list[tuple[int, int]]:
    """Spans of the values of credential-named parameters: from "=" to the next ";" or "&"."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (key := _PARAM_KEY.search(text, pos)) is not None:
        pos = key.end()
        if _CREDENTIAL_WORD.search(key.group(1)):
            end = _VALUE_END.search(text, pos)
            spans.append((pos, end.start() if end else len(text)))
            pos = spans[-1][1]
    return spans


def _mask_params(text: str) -> str:
    out, pos = [], 0
    for start, end in _credential_values(text):
        out += [text[pos:start], MASK]
        pos = end
    return "".join([*out, text[pos:]])


def redact_url(url: str) -> str:
    """``rtsp://u:p@host:554/a;password=x?token=y`` -> ``rtsp://***@host:554/a;password=***``."""
    parts = _split(url)
    if parts is None:
        return MASK
    if not parts.readable:
        return f"{parts.scheme}://{MASK}"
    userinfo = f"{MASK}@" if parts.userinfo is not None else ""
    port = f":{parts.port}" if parts.port else ""
    path = re.split(r"[?#]", _mask_params(parts.tail), maxsplit=1)[0]
    return f"{parts.scheme}://{userinfo}{parts.host}{port}{path}"


def redact_text(text: str) -> str:
    """Every ``scheme://...`` in free text (a log line, an engine message) made safe to show."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def url_secrets(url: str) -> list[str]:
    """The URL and its secret parts, raw and decoded, for literal masking (:class:`Redactor`).

    The userinfo and its password, credential parameter values, the query and its values;
    all of what follows the scheme when the URL cannot be read."""
    found = [url]
    parts = _split(url)
    if parts is None:
        return found
    values: list[str] = []
    if parts.userinfo is not None:
        user, colon, password = parts.userinfo.partition(":")
        values += [parts.userinfo, password] + ([user] if colon else [])
    if not parts.readable:  # all of it, and what may be a password without its "@"
        values += [parts.tail, parts.tail.partition(":")[2]]
    rest = url[len(parts.scheme) + 3 :]
    for start, end in _credential_values(rest):  # the value, and as urlsplit would cut it
        values += [rest[start:end], re.split(r"[?#]", rest[start:end], maxsplit=1)[0]]
    query = parts.tail.partition("?")[2].partition("#")[0]
    values += [query, *(pair.partition("=")[2] for pair in query.split("&"))]
    for value in values:
        if value:
            found += [value, unquote(value)]
    return found


class Redactor:
    """Masks URL credentials anywhere in a text, then each known secret (of >= 4 characters)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a URL is replaced whole before its password alone.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = redact_text(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
