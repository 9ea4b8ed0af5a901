"""How the test receiver decides an ICE session is alive: like Pion (LiveKit's ingress), or
like aioice's strict RFC 7675 consent.

**Pion** (pion/ice v4, which LiveKit's ingress uses): any inbound packet on the session counts
as liveness. The agent sends keepalive binding requests every 2 s but never waits for their
answers; with nothing received for ``disconnectedTimeout`` (5 s) the connection is
*disconnected*, and ``failedTimeout`` (25 s) later it is *failed* and closed. FFmpeg's WHIP
muxer answers binding requests only during its handshake, yet its media keeps a Pion session
alive.

**Consent** (aioice's own, RFC 7675): a binding request every ``CONSENT_INTERVAL`` (5 s, ±20 %)
whose answer must come; 6 unanswered ones close the session (about 30 s). A muxer session dies
there, which is what ``consent`` mode keeps visible to the tests.

:func:`use` switches the mode for every aioice connection of the process (the receiver runs in
its own process). Its ``scale`` shortens every interval, so a test sees either verdict in
seconds instead of half a minute.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import aioice.ice
from aioice.ice import Connection, StunProtocol

MODES = ("pion", "consent")
PION_KEEPALIVE_S = 2.0
PION_DISCONNECTED_S = 5.0
PION_FAILED_S = 25.0
AIOICE_CONSENT_INTERVAL_S = 5.0

_consent_check = Connection.query_consent
_datagram_received = StunProtocol.datagram_received
_scale = 1.0
# When each connection last received anything (Pion's ``lastReceived``).
_last_inbound: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()


def _stamped_datagram_received(self: StunProtocol, data: bytes | str, addr: Any) -> None:
    receiver = getattr(self, "receiver", None)
    if isinstance(receiver, Connection):
        _last_inbound[receiver] = time.monotonic()
    _datagram_received(self, data, addr)


async def _pion_liveness(self: Connection) -> None:
    """Pion's checks: keepalives sent without waiting, closed after silence (see above)."""
    _last_inbound.setdefault(self, time.monotonic())
    silent_for = (PION_DISCONNECTED_S + PION_FAILED_S) * _scale
    while True:
        await asyncio.sleep(PION_KEEPALIVE_S * _scale)
        for pair in self._nominated.values():
            pair.protocol.send_stun(self.build_request(pair, nominate=False), pair.remote_addr)
        if time.monotonic() - _last_inbound[self] > silent_for:
            self._query_consent_task = None
            await self.close()
            return


def use(mode: str, scale: float = 1.0) -> None:
    """Every aioice connection of this process checks liveness the ``mode`` way."""
    global _scale
    if mode not in MODES:
        raise ValueError(f"liveness mode must be one of {MODES}, got {mode!r}")
    if not 0 < scale <= 1:
        raise ValueError("scale must be in (0, 1]")
    _scale = scale
    aioice.ice.CONSENT_INTERVAL = AIOICE_CONSENT_INTERVAL_S * scale  # type: ignore[assignment]
    if mode == "pion":
        StunProtocol.datagram_received = _stamped_datagram_received  # type: ignore[method-assign]
        Connection.query_consent = _pion_liveness  # type: ignore[method-assign]
    else:
        StunProtocol.datagram_received = _datagram_received  # type: ignore[method-assign]
        Connection.query_consent = _consent_check  # type: ignore[method-assign]
