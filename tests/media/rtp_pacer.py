"""The camera's shared clock: replay the encoded loop in real time to every playing client.

One ticker for all clients, like one sensor feeding one encoder: tick ``n`` (an absolute
count since start) sends access unit ``n mod len(loop)``. Its RTP timestamp is its
presentation time, ``offset + p * 90000 / fps`` where ``p`` is its absolute presentation index
(the loop iteration's first frame plus the unit's pts), so timestamps run on across loop
iterations. Without B-frames ``p == n``; with them access units go out in decode order and
their timestamps are not monotonic (RFC 6184 §5.1: the timestamp is the sampling time of the
picture). A client that starts playing joins at the next IDR, as a camera that holds a new
viewer until a keyframe.
Each client has its own SSRC, sequence numbers and timestamp offset (RFC 3550 §5.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from tests.media.encoded_loop import AccessUnit, EncodedLoop
from tests.media.h264 import packetize
from tests.media.rtsp_messages import interleaved_frame

RTP_CLOCK = 90_000
PAYLOAD_TYPE = 96
MAX_BUFFERED = 8 * 1024 * 1024  # a client this far behind is dropped, as a camera would


class RtpSink:
    """One playing client: RTP over its RTSP connection on an interleaved channel."""

    def __init__(self, transport: asyncio.WriteTransport, channel: int, fps: int) -> None:
        self.transport = transport
        self.channel = channel
        self.fps = fps
        self.ssrc = secrets.randbits(32)
        self.first_sequence = secrets.randbits(16)
        self.sequence = self.first_sequence
        self.timestamp_offset = secrets.randbits(32)
        self.start_index = 0
        self.frames_sent = 0

    def timestamp(self, presentation_index: int) -> int:
        """The RTP timestamp of the frame presented at ``presentation_index`` since start."""
        return (self.timestamp_offset + presentation_index * RTP_CLOCK // self.fps) & 0xFFFFFFFF

    def send(self, presentation_index: int, unit: AccessUnit) -> None:
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > MAX_BUFFERED:
            self.transport.abort()
            return
        packets = packetize(
            unit.nals,
            payload_type=PAYLOAD_TYPE,
            sequence_number=self.sequence,
            timestamp=self.timestamp(presentation_index),
            ssrc=self.ssrc,
        )
        self.sequence = (self.sequence + len(packets)) & 0xFFFF
        self.frames_sent += 1
        self.transport.write(b"".join(interleaved_frame(self.channel, p) for p in packets))


class Pacer:
    """Ticks at ``fps`` and hands each access unit to the sinks that have started."""

    def __init__(self, loop: EncodedLoop) -> None:
        self.loop = loop
        self.next_index = 0
        self._sinks: set[RtpSink] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="camera-pacer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._sinks.clear()

    def presentation_index(self, index: int) -> int:
        """The absolute presentation index of the access unit sent at tick ``index``."""
        size = len(self.loop.access_units)
        return index - index % size + self.loop.access_units[index % size].pts

    def next_idr_index(self) -> int:
        """The first frame at or after the next tick that opens a GOP."""
        return self.next_index + (-self.next_index % self.loop.gop)

    def play(self, sink: RtpSink) -> None:
        """Start ``sink`` at the next IDR (call before its PLAY response is written)."""
        sink.start_index = self.next_idr_index()
        self._sinks.add(sink)

    def remove(self, sink: RtpSink) -> None:
        self._sinks.discard(sink)

    async def _run(self) -> None:
        clock = asyncio.get_running_loop().time
        units = self.loop.access_units
        started = clock()
        while True:
            # behind schedule (a stalled event loop) the frames go out in a burst, never skipped:
            # a P-frame without its predecessors would not decode; sleep(0) still yields
            await asyncio.sleep(max(0.0, started + self.next_index / self.loop.fps - clock()))
            index = self.next_index
            unit = units[index % len(units)]
            presented = self.presentation_index(index)
            for sink in list(self._sinks):
                if index >= sink.start_index:
                    sink.send(presented, unit)
            self.next_index = index + 1
