"""The WHIP pusher: pull one camera's RTSP over TCP and publish its H.264 unchanged over WHIP.

One process per watched camera, started by the orchestrator as a container. The H.264 access
units the camera sends are packetized for WebRTC as they are: nothing is decoded or encoded.
The process exits non-zero when the camera or the WHIP endpoint fails, so the orchestrator's
restart backoff applies; on SIGTERM it deletes its WHIP session and exits 0.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How the process ended; the orchestrator restarts on anything but ``STOPPED``."""

    STOPPED = 0  # SIGTERM/SIGINT: session deleted, clean exit
    CAMERA = 1  # RTSP could not be opened, was not H.264, stalled or ended
    CONFIG = 2  # bad or missing environment
    WHIP = 3  # the WHIP endpoint refused the offer, ICE failed, or the session dropped
