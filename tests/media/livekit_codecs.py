"""Which offered video codecs LiveKit's WHIP ingress (bypass mode) keeps: the rule, as pure code.

The ingress registers exactly one H.264 codec, ``packetization-mode=1`` with
``profile-level-id=42001f`` (constrained-less baseline, level 3.1), plus VP8 (and opus and PCMA
for audio). Its WebRTC stack (pion) negotiates each offered media section like this:

* every offered codec is looked up among the registered ones, first for an *exact* match
  (same MIME type and matching format parameters), otherwise for a *partial* match (same MIME
  type and clock rate, format parameters ignored);
* H.264 format parameters match when ``packetization-mode`` is present on both sides with the
  same value (absent counts as a mismatch, not as mode 0) and ``profile-level-id`` is present on
  both sides with the same first two bytes (``profile_idc`` and the constraint flags); the level
  byte is ignored. Parameter keys are compared lower-cased;
* other codecs' format parameters match when every parameter both sides set has the same
  value (case-insensitive);
* the section keeps its exact matches if it has any, else its partial matches; with neither it
  is refused and the ingress fails the whole request;
* the answer echoes the offer's payload type and format parameters for each kept codec.

So High (``640028``), Main (``4d0028``), ``42e01f``, ``424028`` and ``packetization-mode=0``
offers are all accepted (partially), but if an offer also lists ``42001f``/mode 1 only that one
is kept. Retransmission (``video/rtx``) entries are outside this rule: pass them elsewhere.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

H264 = "video/h264"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


@dataclass(frozen=True)
class Codec:
    """One offered or registered codec: ``mime_type`` like ``video/H264``, ``params`` its fmtp."""

    mime_type: str
    clock_rate: int
    params: Mapping[str, str] = field(default_factory=dict)
    payload_type: int | None = None
    channels: int | None = None


class Match(enum.Enum):
    EXACT = "exact"
    PARTIAL = "partial"
    NONE = "none"


REGISTERED_VIDEO: tuple[Codec, ...] = (
    Codec(
        "video/H264",
        90000,
        {"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42001f"},
    ),
    Codec("video/VP8", 90000),
)
REGISTERED_AUDIO: tuple[Codec, ...] = (
    Codec("audio/opus", 48000, channels=2),
    Codec("audio/PCMA", 8000),
)


def parse_fmtp(line: str) -> dict[str, str]:
    """``a=fmtp`` parameters (the text after the payload type) with lower-cased keys."""
    params: dict[str, str] = {}
    for part in line.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            params[key.lower()] = value.strip()
    return params


def _lower_keys(params: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in params.items()}


def _profile_bytes(profile_level_id: str) -> bytes | None:
    """The first two bytes of a hex ``profile-level-id``; None when it is not hex or too short."""
    if not _HEX.fullmatch(profile_level_id):
        return None
    raw = bytes.fromhex(profile_level_id)
    return raw[:2] if len(raw) >= 2 else None


def h264_fmtp_matches(
    offer_params: Mapping[str, str], registered_params: Mapping[str, str]
) -> bool:
    """Whether two H.264 fmtp parameter sets match the way LiveKit's ingress compares them."""
    a, b = _lower_keys(offer_params), _lower_keys(registered_params)
    mode_a, mode_b = a.get("packetization-mode"), b.get("packetization-mode")
    if mode_a is None or mode_b is None or mode_a != mode_b:
        return False
    plid_a, plid_b = a.get("profile-level-id"), b.get("profile-level-id")
    if plid_a is None or plid_b is None:
        return False
    bytes_a, bytes_b = _profile_bytes(plid_a), _profile_bytes(plid_b)
    return bytes_a is not None and bytes_a == bytes_b


def _generic_fmtp_matches(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    a, b = _lower_keys(a), _lower_keys(b)
    return all(b[k].lower() == v.lower() for k, v in a.items() if k in b)


def _same_kind(offered: Codec, registered: Codec) -> bool:
    return (
        offered.mime_type.lower() == registered.mime_type.lower()
        and offered.clock_rate == registered.clock_rate
    )


def match(offered: Codec, registered: Iterable[Codec] = REGISTERED_VIDEO) -> Match:
    """How one offered codec matches the registered ones: exact, partial (MIME type and clock
    rate only) or not at all."""
    candidates = [r for r in registered if _same_kind(offered, r)]
    for r in candidates:
        if offered.mime_type.lower() == H264:
            if h264_fmtp_matches(offered.params, r.params):
                return Match.EXACT
        elif _generic_fmtp_matches(offered.params, r.params):
            return Match.EXACT
    return Match.PARTIAL if candidates else Match.NONE


def select(offered: Iterable[Codec], registered: Iterable[Codec] = REGISTERED_VIDEO) -> list[Codec]:
    """What LiveKit keeps of a media section's codecs, in offer order: the exact matches if any,
    else the partial ones; ``[]`` means the section (and so the request) is refused."""
    registered = tuple(registered)
    exact: list[Codec] = []
    partial: list[Codec] = []
    for codec in offered:
        kind = match(codec, registered)
        if kind is Match.EXACT:
            exact.append(codec)
        elif kind is Match.PARTIAL:
            partial.append(codec)
    return exact or partial
