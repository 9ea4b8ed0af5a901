"""RTP payloads of H.264 (RFC 6184) back into Annex-B access units, bytes unchanged.

Packetization modes 0 and 1: single NAL unit packets, STAP-A aggregates and FU-A fragments.
An access unit ends at the RTP marker bit, or when the timestamp changes (a camera that never
sets the marker still works, one frame later).

A lost packet (a gap in sequence numbers, a fragment without its start) spoils its access unit,
and every access unit after it until the next IDR: a decoder cannot use frames whose
references are gone. Over RTSP/TCP that only happens when the camera itself drops packets.

The per-packet work is one ``struct`` unpack and a few integer tests; payload bytes are sliced
as views of the read buffer and copied once, when the access unit is joined (or, for one still
arriving, by :meth:`H264Depacketizer.detach` before the buffer is reused).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from .h264info import NAL_IDR

START_CODE = b"\x00\x00\x00\x01"  # four bytes, as FFmpeg's RTP demuxer writes them
STAP_A, FU_A = 24, 28
_RTP = struct.Struct(">BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_U16 = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class AccessUnit:
    data: bytes  # Annex-B: each NAL unit after a 4-byte start code
    timestamp: int  # RTP clock (90 kHz), unwrapped: it never goes back by 2**32
    keyframe: bool  # holds an IDR slice


class H264Depacketizer:
    """Feed RTP packets with :meth:`push`; complete access units collect in :attr:`ready`."""

    def __init__(self) -> None:
        self.ready: deque[AccessUnit] = deque()
        self.lost = 0  # packets missing from the sequence
        self.spoiled = 0  # access units dropped for a loss (waiting for an IDR included)
        self.ssrc: int | None = None
        self._cycles = 0  # 65536 per sequence number wrap
        self._last_seq: int | None = None
        self._parts: list[bytes | memoryview] = []
        self._timestamp: int | None = None
        self._idr = False
        self._broken = False
        self._waiting_idr = False
        self._next_seq: int | None = None
        self._epoch = 0  # 2**32 per timestamp wrap
        self._last_raw_ts: int | None = None

    @property
    def highest_seq(self) -> int:
        """The extended highest sequence number (cycles * 65536 + seq), for receiver reports;
        -1 before any packet."""
        return -1 if self._last_seq is None else self._cycles + self._last_seq

    @property
    def partial(self) -> bool:
        """An access unit has begun and has not ended yet (its marker bit is still to come)."""
        return bool(self._parts)

    def detach(self) -> None:
        """Copy the unfinished access unit's bytes: the buffer its packets were read into is
        about to be reused."""
        if len(self._parts) > 1 or (self._parts and isinstance(self._parts[0], memoryview)):
            self._parts = [b"".join(self._parts)]

    def push(self, packet: memoryview) -> None:
        """One RTP packet (header included). Malformed packets are ignored."""
        size = len(packet)
        if size < 13:
            return
        flags, mark_pt, seq, raw_ts, self.ssrc = _RTP.unpack_from(packet)
        if flags == 0x80 and seq == self._next_seq and raw_ts == self._last_raw_ts:
            # Most packets: no CSRC, extension or padding, next in sequence, same picture.
            self._last_seq, self._next_seq = seq, (seq + 1) & 0xFFFF
            if not seq:
                self._cycles += 0x10000
            if size > 14 and packet[12] & 0x1F == FU_A and not packet[13] & 0x80 and self._parts:
                self._parts.append(packet[14:])  # a fragment after the first: its data only
            else:
                self._payload(packet, 12, size)
        elif not self._general(packet, size, flags, seq, raw_ts):
            return
        if mark_pt & 0x80:
            self._finish()

    def _general(self, packet: memoryview, size: int, flags: int, seq: int, raw_ts: int) -> bool:
        """Any other packet; False when it is dropped (malformed, late or repeated)."""
        if flags >> 6 != 2:
            return False
        start = 12 + 4 * (flags & 0x0F)
        if flags & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
            if size < start + 4:
                return False
            start += 4 + 4 * _U16.unpack_from(packet, start + 2)[0]
        stop = size - packet[size - 1] if flags & 0x20 else size
        if stop <= start:
            return False
        gap = self._sequence(seq)
        if gap is None:
            return False
        timestamp = self._unwrap(raw_ts)
        if timestamp != self._timestamp:
            if self._parts or self._broken:
                self._broken |= gap  # the missing packets may have ended it
                self._finish()
            self._timestamp = timestamp
        self._broken |= gap
        self._payload(packet, start, stop)
        return True

    def _sequence(self, seq: int) -> bool | None:
        """Track the sequence number: True when packets are missing before this one, None for
        a late or repeated packet (which is dropped)."""
        expected = self._next_seq
        gap = False
        if expected is not None and seq != expected:
            missing = (seq - expected) & 0xFFFF
            if missing >= 0x8000:
                return None
            self.lost += missing
            gap = True
        if self._last_seq is not None and seq < self._last_seq:
            self._cycles += 0x10000
        self._last_seq, self._next_seq = seq, (seq + 1) & 0xFFFF
        return gap

    def _unwrap(self, raw: int) -> int:
        last = self._last_raw_ts
        if last is not None and raw < last and last - raw > 0x80000000:
            self._epoch += 1 << 32
        self._last_raw_ts = raw
        return self._epoch + raw

    def _payload(self, packet: memoryview, start: int, stop: int) -> None:
        header = packet[start]
        kind = header & 0x1F
        parts = self._parts
        if 0 < kind < STAP_A:
            parts.append(START_CODE)
            parts.append(packet[start:stop])
            if kind == NAL_IDR:
                self._idr = True
        elif kind == FU_A:
            if stop - start < 3:
                self._broken = True
                return
            fu = packet[start + 1]
            if fu & 0x80:  # first fragment: the NAL header is rebuilt from both bytes
                nal_kind = fu & 0x1F
                parts.append(START_CODE + bytes(((header & 0xE0) | nal_kind,)))
                if nal_kind == NAL_IDR:
                    self._idr = True
            elif not parts:  # a middle or end without its start: the start was lost
                self._broken = True
                return
            parts.append(packet[start + 2 : stop])
        elif kind == STAP_A:
            self._aggregate(packet, start + 1, stop)
        else:  # 0, 30, 31: reserved; 25-27, 29: interleaved mode only (refused at SETUP)
            self._broken = True

    def _aggregate(self, packet: memoryview, at: int, stop: int) -> None:
        parts = self._parts
        while at + 2 < stop:
            size = _U16.unpack_from(packet, at)[0]
            at += 2
            if size == 0 or at + size > stop:
                self._broken = True
                return
            parts.append(START_CODE)
            parts.append(packet[at : at + size])
            if packet[at] & 0x1F == NAL_IDR:
                self._idr = True
            at += size

    def _finish(self) -> None:
        parts, idr, broken = self._parts, self._idr, self._broken
        self._parts, self._idr, self._broken = [], False, False
        if broken or (self._waiting_idr and not idr):
            self._waiting_idr = True
            self.spoiled += 1
            return
        self._waiting_idr = False
        if parts and self._timestamp is not None:
            self.ready.append(AccessUnit(b"".join(parts), self._timestamp, idr))
