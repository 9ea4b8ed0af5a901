"""The WebRTC side: a send-only H.264 peer connection whose offer and answer travel over WHIP.

Codec preferences are restricted to H.264 on the transceiver. Without that, aiortc would
negotiate VP8 and its sender would die on the first H.264 packet. ICE servers are only those
configured: aiortc's default (a public STUN server) is never used, so a pusher on an isolated
network sends nothing off it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from .whip import WhipClient, WhipError, WhipSession

_RTPMAP = re.compile(r"^a=rtpmap:\d+ ([A-Za-z0-9-]+)/", re.MULTILINE)


class Publisher:
    def __init__(self, track: MediaStreamTrack, ice_servers: tuple[str, ...]) -> None:
        config = RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in ice_servers])
        self.pc = RTCPeerConnection(config)
        self.session: WhipSession | None = None
        self.dropped: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._up = asyncio.Event()
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == "video/h264"])
        self.pc.on("connectionstatechange", self._state_changed)

    async def connect(self, whip: WhipClient, timeout_s: float) -> str:
        """Offer, answer, wait for ICE+DTLS; the negotiated codec, or :class:`WhipError`."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.session = await whip.publish(self.pc.localDescription.sdp)
        codecs = {c.upper() for c in _RTPMAP.findall(self.session.answer)}
        if "H264" not in codecs:
            raise WhipError(f"WHIP answer accepts no H.264 (offers {sorted(codecs)})")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(self.session.answer, "answer"))
        except ValueError as exc:
            raise WhipError(f"WHIP answer rejected: {exc}") from None
        try:
            await asyncio.wait_for(self._connected(), timeout_s)
        except TimeoutError:
            raise WhipError(f"ICE/DTLS not connected within {timeout_s:g} s") from None
        return "H264"

    async def _connected(self) -> None:
        up = asyncio.ensure_future(self._up.wait())
        waits: list[asyncio.Future[Any]] = [up, self.dropped]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if not self._up.is_set():
            raise WhipError(f"connection {self.dropped.result()} while connecting")

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self._up.set()
        if state in ("failed", "closed") and not self.dropped.done():
            self.dropped.set_result(state)

    async def close(self) -> None:
        await self.pc.close()
