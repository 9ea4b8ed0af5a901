"""WHIP signalling (RFC 9725): one POST of the SDP offer, one DELETE of the session.

The offer carries every ICE candidate (aiortc gathers before it returns the offer), so there is
no trickle ICE and no PATCH. The endpoint must answer ``201 Created`` with an SDP answer and a
``Location``: the session URL, relative to the request, that the DELETE goes to. Redirects
(307/308) are followed with the method and body kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

SDP = "application/sdp"


class WhipError(Exception):
    """The endpoint refused or could not be reached; ``status`` is None without a response."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class WhipSession:
    location: str
    answer: str
    etag: str | None


class WhipClient:
    """Each request gets its own HTTP client: there are two per session, usually hours apart,
    and an idle client would hold its TLS context (the parsed CA bundle) all that time."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._transport = transport
        self._headers = {"User-Agent": "cctv-pusher"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._timeout_s,
            follow_redirects=True,
            headers=self._headers,
            trust_env=False,
            transport=self._transport,
        )

    async def publish(self, offer: str) -> WhipSession:
        try:
            async with self._client() as http:
                resp = await http.post(
                    self._url, content=offer.encode(), headers={"Content-Type": SDP, "Accept": SDP}
                )
        except httpx.HTTPError as exc:
            raise WhipError(f"WHIP endpoint unreachable: {type(exc).__name__}") from None
        if resp.status_code != 201:
            detail = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
            raise WhipError(f"WHIP endpoint answered {resp.status_code} {detail}", resp.status_code)
        location = resp.headers.get("Location", "")
        if not location:
            raise WhipError("WHIP answer has no Location header", resp.status_code)
        if resp.headers.get("Content-Type", "").split(";")[0].strip() != SDP:
            raise WhipError("WHIP answer is not application/sdp", resp.status_code)
        return WhipSession(str(resp.url.join(location)), resp.text, resp.headers.get("ETag"))

    async def delete(self, session: WhipSession) -> int:
        """End the session at the endpoint; the HTTP status (404: it was already gone)."""
        try:
            async with self._client() as http:
                resp = await http.delete(session.location)
        except httpx.HTTPError as exc:
            raise WhipError(f"WHIP DELETE failed: {type(exc).__name__}") from None
        return resp.status_code
