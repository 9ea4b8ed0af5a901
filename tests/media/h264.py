"""H.264 Annex-B helpers and RTP packetization (RFC 6184) for the camera simulator.

Encoders (libx264 here) emit an Annex-B byte stream: NAL units separated by 3- or 4-byte
start codes. RTP carries bare NAL units instead, so the simulator splits the stream, and the
tests hash the bare NAL units on both sides to prove that what a client decoded is byte for
byte what the camera sent (RTSP clients re-add start codes of their own choosing).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

NON_IDR = 1
IDR = 5
SEI = 6
SPS = 7
PPS = 8
AUD = 9
FILLER = 12
FU_A = 28

START_CODE = b"\x00\x00\x01"
RTP_VERSION = 2
MAX_PAYLOAD = 1200  # below a 1500-byte Ethernet MTU with IP, UDP/TCP and RTP headers to spare


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B stream, without start codes.

    A 4-byte start code is a 3-byte one preceded by a zero byte, and Annex-B allows any
    number of ``trailing_zero_8bits`` after a NAL unit; a NAL unit itself never ends in a
    zero byte (its RBSP ends with a stop bit), so trailing zeros are stripped.
    """
    nals: list[bytes] = []
    start = data.find(START_CODE)
    while start != -1:
        begin = start + len(START_CODE)
        nxt = data.find(START_CODE, begin)
        end = len(data) if nxt == -1 else nxt
        nal = data[begin:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        start = nxt
    return nals


def nal_type(nal: bytes) -> int:
    """``nal_unit_type``: the low five bits of the NAL header byte."""
    return nal[0] & 0x1F


def nal_digest(nal: bytes) -> str:
    """SHA-256 hex of a NAL unit without its start code (start codes vary by muxer)."""
    return hashlib.sha256(nal).hexdigest()


def profile_level_id(sps: bytes) -> str:
    """SDP ``profile-level-id``: profile_idc, constraint flags and level_idc of an SPS, hex."""
    if nal_type(sps) != SPS or len(sps) < 4:
        raise ValueError("not an SPS NAL unit")
    return sps[1:4].hex()


def rtp_header(
    *, payload_type: int, sequence_number: int, timestamp: int, ssrc: int, marker: bool
) -> bytes:
    """The fixed 12-byte RTP header (RFC 3550 §5.1): no padding, extension or CSRCs."""
    return struct.pack(
        "!BBHII",
        RTP_VERSION << 6,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


def _payloads(nal: bytes, max_payload: int) -> list[bytes]:
    """One single-NAL-unit payload, or FU-A fragments when the NAL unit does not fit."""
    if len(nal) <= max_payload:
        return [nal]
    header = nal[0]
    indicator = bytes([(header & 0xE0) | FU_A])  # F and NRI of the NAL, type 28
    kind = header & 0x1F
    body = nal[1:]
    step = max_payload - 2  # FU indicator + FU header
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    out: list[bytes] = []
    for index, chunk in enumerate(chunks):
        start = 0x80 if index == 0 else 0
        end = 0x40 if index == len(chunks) - 1 else 0
        out.append(indicator + bytes([start | end | kind]) + chunk)
    return out


def packetize(
    nals: Sequence[bytes],
    *,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    max_payload: int = MAX_PAYLOAD,
) -> list[bytes]:
    """RTP packets for one access unit (packetization-mode=1, no aggregation packets).

    Every packet carries the access unit's ``timestamp``; sequence numbers count up from
    ``sequence_number`` (modulo 2**16), so the caller advances its counter by the number of
    packets returned. The marker bit is set on the last packet of the access unit only.
    """
    if max_payload < 3:
        raise ValueError("max_payload must leave room for an FU-A header and data")
    payloads = [payload for nal in nals for payload in _payloads(nal, max_payload)]
    packets: list[bytes] = []
    for index, payload in enumerate(payloads):
        header = rtp_header(
            payload_type=payload_type,
            sequence_number=sequence_number + index,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=index == len(payloads) - 1,
        )
        packets.append(header + payload)
    return packets
