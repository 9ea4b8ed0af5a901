"""RTSP authentication for the lean reader: HTTP Basic and Digest (RFC 2617, MD5 and MD5-sess).

A camera names its scheme in ``WWW-Authenticate`` on a 401; Digest is preferred when it offers
both, since Basic sends the password in the clear. The password never leaves this module except
inside an ``Authorization`` header.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class AuthError(ValueError):
    """The camera asks for a scheme this reader does not speak."""


class Credentials:
    """A user and password, and the challenge the camera last sent."""

    def __init__(self, user: str, password: str) -> None:
        self._user, self._password = user, password
        self._scheme: str | None = None
        self._params: dict[str, str] = {}
        self._count = 0

    def __repr__(self) -> str:
        return f"Credentials(scheme={self._scheme!r})"  # never the user or password

    @property
    def challenged(self) -> bool:
        return self._scheme is not None

    def challenge(self, headers: list[str]) -> None:
        """Take the camera's ``WWW-Authenticate`` headers (Digest over Basic)."""
        offers = {value.split(None, 1)[0].lower(): value for value in headers if value.strip()}
        if "digest" in offers:
            params = {m[0].lower(): m[1] or m[2] for m in _PARAM.findall(offers["digest"][6:])}
            algorithm = params.get("algorithm", "MD5").upper()
            if algorithm not in ("MD5", "MD5-SESS") or "nonce" not in params:
                raise AuthError(f"unsupported Digest challenge (algorithm {algorithm})")
            self._scheme, self._params, self._count = "digest", params, 0
        elif "basic" in offers:
            self._scheme = "basic"
        else:
            raise AuthError(f"unsupported authentication scheme(s): {', '.join(offers) or 'none'}")

    def header(self, method: str, uri: str) -> str | None:
        """The ``Authorization`` value for a request, once challenged; None before."""
        if self._scheme == "basic":
            token = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
            return f"Basic {token}"
        if self._scheme == "digest":
            return self._digest(method, uri)
        return None

    def _digest(self, method: str, uri: str) -> str:
        p = self._params
        realm, nonce = p.get("realm", ""), p["nonce"]
        ha1 = _md5(f"{self._user}:{realm}:{self._password}")
        cnonce = secrets.token_hex(8)
        if p.get("algorithm", "MD5").upper() == "MD5-SESS":
            ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self._user}"', f'realm="{realm}"', f'nonce="{nonce}"']
        fields.append(f'uri="{uri}"')
        qops = [q.strip() for q in p.get("qop", "").split(",")]
        if "auth" in qops:
            self._count += 1
            nc = f"{self._count:08x}"
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in p:
            fields.append(f'opaque="{p["opaque"]}"')
        if "algorithm" in p:
            fields.append(f"algorithm={p['algorithm']}")
        return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
