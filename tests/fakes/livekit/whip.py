"""WHIP endpoints shaped like LiveKit's ingress WHIP server.

`POST /w` (stream key as `Authorization: Bearer <key>`, `Bearer ` optional) or `POST /w/<key>`
with an SDP offer -> `201 application/sdp`, `Location: /w/<key>/<WH_id>`, `ETag` (CRC32 of the
offer), CORS headers. Neither Content-Type nor Accept is checked. A POST on an active
ingress is accepted too; what follows the 201 is in `sessions.py`.

`DELETE /w/<key>/<WH_id>` -> 200 empty. An unknown resource answers 404 only after the psrpc
timeout (`Timing.no_response_seconds`, ~1 s); a wrong stream key on a known resource is only
logged. `PATCH` is an ICE restart only: a body without ice-ufrag/ice-pwd is 400, an
unknown resource 503 after the psrpc timeout, no `If-Match: *` 422 "Trickle-ICE not supported",
else 200 `application/trickle-ice-sdpfrag` with an ETag. Errors are plain text.

The answer is a static SDP unless an upstream WHIP URL is configured: then the offer is
forwarded there and its answer returned, and the upstream session is DELETEd whenever the
fake's session ends (client DELETE, ERROR, eviction, DeleteIngress...), so a real pusher loses
its peer. PATCH is not forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import zlib
from collections.abc import Callable

import aiohttp
from aiohttp import web
from yarl import URL

from .errors import WhipFailure
from .faults import Timing
from .ingresses import IngressStore
from .sessions import WhipSession, WhipSessions

APP = "/w"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location"}
_ICE = re.compile(r"^a=ice-(ufrag|pwd):(\S+)", re.MULTILINE)

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
RESTART_ANSWER = "a=ice-ufrag:fakeLiveKitR\na=ice-pwd:fakeLiveKitRestartPasswordX1\n"


class WhipEndpoints:
    def __init__(
        self,
        store: IngressStore,
        sessions: WhipSessions,
        session: Callable[[], aiohttp.ClientSession],
        timing: Timing,
        upstream: str | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._session = session
        self._timing = timing
        self.upstream = upstream
        self._teardowns: set[asyncio.Task[None]] = set()
        sessions.on_closed = self._closed_by_server

    def register(self, app: web.Application) -> None:
        app.router.add_route("POST", APP, self.post)
        app.router.add_route("POST", APP + "/{key}", self.post)
        app.router.add_route("DELETE", APP + "/{key}/{resource}", self.delete)
        app.router.add_route("OPTIONS", APP, self.options)
        app.router.add_route("OPTIONS", APP + "/{key}", self.options)
        app.router.add_route("OPTIONS", APP + "/{key}/{resource}", self.options)
        app.router.add_route("PATCH", APP + "/{key}/{resource}", self.patch)

    async def close(self) -> None:
        for task in list(self._teardowns):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def post(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info.get("key") or _bearer(request.headers.get("Authorization", ""))
        offer = await request.text()
        try:
            info = self._store.publishable(key)
            if not offer.strip():
                raise WhipFailure(400, "empty SDP offer")
            answer, upstream_location = STATIC_ANSWER, None
            if self.upstream:
                answer, upstream_location = await self._forward(offer)
                info = self._store.publishable(key)  # re-check: state may have moved meanwhile
            session = self._sessions.start(info.ingress_id, upstream_location)
        except WhipFailure as exc:
            return web.Response(status=exc.status, text=exc.text)
        headers = {
            **CORS,
            "Location": f"{APP}/{key}/{session.resource_id}",
            "ETag": f"{zlib.crc32(offer.encode()):08x}",
        }
        return web.Response(
            status=201, body=answer.encode(), content_type="application/sdp", headers=headers
        )

    async def delete(self, request: web.Request) -> web.StreamResponse:
        key, resource = request.match_info["key"], request.match_info["resource"]
        try:
            session = self._sessions.end(key, resource)
        except WhipFailure as exc:
            await asyncio.sleep(self._timing.no_response_seconds)  # psrpc ErrNoResponse
            return web.Response(status=exc.status, text=exc.text, headers=_ORIGIN)
        if session.upstream_location:
            await self._delete_upstream(session.upstream_location)
        return web.Response(status=200, headers=_ORIGIN)

    async def options(self, request: web.Request) -> web.StreamResponse:
        headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}
        if "resource" in request.match_info:
            headers["Access-Control-Allow-Methods"] = "PATCH, OPTIONS, DELETE"
            return web.Response(status=200, headers=headers)
        headers.update(CORS)
        headers["Accept-Post"] = "application/sdp"
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        return web.Response(status=204, headers=headers)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        """ICE restart only (`ICERestartWHIPResource`); trickle ICE is refused with 422."""
        ice = {m[1]: m[2] for m in _ICE.finditer(await request.text())}
        if not ice.get("ufrag") or not ice.get("pwd"):
            return web.Response(
                status=400, text="whip restart request was invalid", headers=_ORIGIN
            )
        if request.match_info["resource"] not in self._sessions.sessions:
            await asyncio.sleep(self._timing.no_response_seconds)
            return web.Response(status=503, text="no response from servers", headers=_ORIGIN)
        if request.headers.get("If-Match") != "*":
            return web.Response(status=422, text="Trickle-ICE not supported", headers=_ORIGIN)
        headers = {**_ORIGIN, "ETag": f"{zlib.crc32(RESTART_ANSWER.encode()):08x}"}
        return web.Response(
            status=200,
            body=RESTART_ANSWER.encode(),
            content_type="application/trickle-ice-sdpfrag",
            headers=headers,
        )

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

    async def _delete_upstream(self, location: str) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
            async with self._session().delete(location) as resp:
                await resp.read()

    def _closed_by_server(self, session: WhipSession) -> None:
        if session.upstream_location:
            task = asyncio.get_running_loop().create_task(
                self._delete_upstream(session.upstream_location)
            )
            self._teardowns.add(task)
            task.add_done_callback(self._teardowns.discard)

    async def drain(self) -> None:
        """Wait for the upstream DELETEs of sessions the server ended."""
        while self._teardowns:
            await asyncio.gather(*self._teardowns, return_exceptions=True)


_ORIGIN = {"Access-Control-Allow-Origin": "*"}


def _bearer(header: str) -> str:
    """The stream key from `Authorization`; some clients omit `Bearer `."""
    return header.removeprefix("Bearer ").strip()
