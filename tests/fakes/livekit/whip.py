"""WHIP endpoints shaped like LiveKit's ingress WHIP server (livekit-wire.md §6).

`POST /w` (stream key as `Authorization: Bearer <key>`, `Bearer ` optional) or `POST /w/<key>`
with an SDP offer -> `201 application/sdp`, `Location: /w/<key>/<WH_id>`, `ETag` (CRC32 of the
offer), CORS headers; `DELETE /w/<key>/<WH_id>` -> 200 empty. Errors are plain text. The answer
is a static SDP unless an upstream WHIP URL is configured, in which case the offer is forwarded
there and its answer returned (and the upstream session deleted on teardown).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable

import aiohttp
from aiohttp import web
from yarl import URL

from .errors import WhipFailure
from .ingresses import IngressStore

APP = "/w"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location"}

STATIC_ANSWER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=ice-lite",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=recvonly",
        "a=rtcp-mux",
        "a=ice-ufrag:fakeLiveKit",
        "a=ice-pwd:fakeLiveKitIcePasswordX1",
        "a=fingerprint:sha-256 " + ":".join(["00"] * 32),
        "a=setup:passive",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "",
    ]
)


class WhipEndpoints:
    def __init__(
        self,
        store: IngressStore,
        session: Callable[[], aiohttp.ClientSession],
        upstream: str | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self.upstream = upstream

    def register(self, app: web.Application) -> None:
        app.router.add_route("POST", APP, self.post)
        app.router.add_route("POST", APP + "/{key}", self.post)
        app.router.add_route("DELETE", APP + "/{key}/{resource}", self.delete)
        app.router.add_route("OPTIONS", APP, self.options)
        app.router.add_route("OPTIONS", APP + "/{key}", self.options)
        app.router.add_route("OPTIONS", APP + "/{key}/{resource}", self.options)
        app.router.add_route("PATCH", APP + "/{key}/{resource}", self.patch)

    async def post(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info.get("key") or _bearer(request.headers.get("Authorization", ""))
        offer = await request.text()
        try:
            info = self._store.publishable(key)
            if request.content_type != "application/sdp":
                raise WhipFailure(415, "unsupported content type, expected application/sdp")
            if not offer.strip():
                raise WhipFailure(400, "empty SDP offer")
            answer, upstream_location = STATIC_ANSWER, None
            if self.upstream:
                answer, upstream_location = await self._forward(offer)
                info = self._store.publishable(key)  # re-check: state may have moved meanwhile
        except WhipFailure as exc:
            return web.Response(status=exc.status, text=exc.text)
        session = self._store.start(info.ingress_id, upstream_location)
        headers = {
            **CORS,
            "Location": f"{APP}/{key}/{session.resource_id}",
            "ETag": f"{zlib.crc32(offer.encode()):08x}",
        }
        return web.Response(
            status=201, body=answer.encode(), content_type="application/sdp", headers=headers
        )

    async def delete(self, request: web.Request) -> web.StreamResponse:
        try:
            session = self._store.end(request.match_info["key"], request.match_info["resource"])
        except WhipFailure as exc:
            return web.Response(status=exc.status, text=exc.text)
        if session.upstream_location:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session().delete(session.upstream_location) as resp:
                    await resp.read()
        return web.Response(status=200, headers=CORS)

    async def options(self, request: web.Request) -> web.StreamResponse:
        if "resource" in request.match_info:
            methods = {"Access-Control-Allow-Methods": "PATCH, OPTIONS, DELETE"}
            return web.Response(status=200, headers={**CORS, **methods})
        headers = {**CORS, "Accept-Post": "application/sdp"}
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        return web.Response(status=204, headers=headers)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        # RFC 9725: a session URL supporting neither trickle ICE nor ICE restart answers 405.
        return web.Response(status=405, text="not supported by the fake LiveKit", headers=CORS)

    async def _forward(self, offer: str) -> tuple[str, str]:
        assert self.upstream is not None
        try:
            async with self._session().post(
                self.upstream, data=offer.encode(), headers={"Content-Type": "application/sdp"}
            ) as resp:
                answer = await resp.text()
                if resp.status != 201:
                    raise WhipFailure(502, f"upstream WHIP answered {resp.status}: {answer}")
                location = resp.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WhipFailure(502, f"upstream WHIP failed: {exc}") from exc
        return answer, str(URL(self.upstream).join(URL(location)))


def _bearer(header: str) -> str:
    """The stream key from `Authorization`; some clients omit `Bearer ` (§6)."""
    return header.removeprefix("Bearer ").strip()
