"""The FFmpeg engine (the default): FFmpeg's own WHIP muxer publishes the camera's access units.

RTP packetizing, SRTP, ICE and DTLS all run in C inside FFmpeg (PyAV's bundled build). The
camera is read by the lean RTSP reader (:mod:`.lean_camera`; FFmpeg's demuxer when configured
so, or for ``rtsps://``), and Python only moves access units to the muxer, with no codec opened:
0.35 to 0.4 of the aiortc engine's CPU and under half its private memory
(``docs/benchmarks.md``).

Where the muxer has sharp edges, this module handles them:

* **Certificate**: a P-256 one made per start (:mod:`.certificate`); FFmpeg's own is P-224.
* **DTLS role**: ``whip_flags=dtls_active`` (the client role) saves the passive role's first
  retransmission.
* **Hangs**: the muxer's HTTP has no timeout and holds the GIL, so the POST (with ICE and DTLS)
  and the DELETE are bounded by :func:`.deadline.hard_deadline`: exit 3 with a log line.
* **B-frames**: the muxer refuses them. A camera whose stream announces B-frames is reported
  (``engine_fallback``) and published by the aiortc engine instead (:data:`FALLBACK`).
* **Secrets**: FFmpeg's messages carry URLs; its errors reach the log only through the
  redactor, and its own logging stays off.

The muxer verifies neither the peer's DTLS fingerprint nor the endpoint's HTTPS certificate:
use this engine where the path to the ingress is trusted (see the README).

Threads: the main thread owns signals, the stall watchdog, stats and the WHIP session's
setup and teardown; one worker thread demuxes and muxes. PyAV releases the GIL while it reads
and while it muxes a packet.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import av
import av.error
from av.container import OutputContainer

from . import ExitCode
from .camera import (
    CameraFailure,
    DemuxedCamera,
    MuxerCamera,
    SourceStats,
    StatsLine,
    open_camera,
)
from .certificate import Certificate, CertificateError, make_certificate
from .config import PusherConfig
from .deadline import hard_deadline
from .lean_camera import BFramesSeen, open_lean
from .logs import Log, safe_url
from .memory import heap_trimmer

PIPELINE = ("h264-passthrough", "ffmpeg-whip-muxer")  # after the reader's name
FALLBACK = None  # what :func:`run` returns when the aiortc engine should publish instead
# RTP packets of the aiortc engine's size (12-byte header + 1,300 bytes of H.264, aiortc's
# PACKET_MAX): 9 % fewer packets than the muxer's default 1,200, and with SRTP's tag 1,322 bytes
# of UDP payload, within Pion's 1,460-byte receive MTU and tunnels' (WireGuard 1,420, VXLAN 1,450).
RTP_PACKET_BYTES = 1312
DELETE_TIMEOUT_S = 3.0
DEADLINE_MARGIN_S = 2.0
B_FRAMES = "the camera sends B-frames, which FFmpeg's WHIP muxer refuses"
# PyAV's error classes for the HTTP statuses FFmpeg tells apart.
HTTP_STATUS = {
    av.error.HTTPBadRequestError: 400,
    av.error.HTTPUnauthorizedError: 401,
    av.error.HTTPForbiddenError: 403,
    av.error.HTTPNotFoundError: 404,
    av.error.HTTPTooManyRequestsError: 429,
}


class _Pump:
    """The worker thread: demux → mux until the camera or the session fails, or ``stop``."""

    def __init__(
        self, log: Log, source: MuxerCamera, output: OutputContainer, stop: threading.Event
    ) -> None:
        self.stats = SourceStats()
        self.camera_failure: str | None = None
        self.whip_failure: str | None = None
        self.b_frames = False
        self._log, self._source, self._output, self._stop = log, source, output, stop
        self._stream = output.streams.video[0]
        self.thread = threading.Thread(target=self._run, name="pump", daemon=True)

    def _run(self) -> None:
        try:
            for packet, _ in self._source.access_units(self._log, self.stats, self._stop.is_set):
                packet.stream = self._stream
                self._output.mux(packet)
        except CameraFailure as exc:
            self.camera_failure = str(exc)
        except BFramesSeen:
            self.b_frames = True
        except (av.error.FFmpegError, OSError) as exc:
            self.whip_failure = f"the muxer failed: {exc}"
        finally:
            self._stop.set()


def run(config: PusherConfig, log: Log) -> ExitCode | None:
    """Publish until something ends it; :data:`FALLBACK` (None) for a B-frame camera."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("starting", camera=safe_url(config.rtsp_url), whip=safe_url(config.whip_url))
    started = time.monotonic()
    try:
        source = _open(config)
    except CameraFailure as exc:
        log.error("camera_failed", reason=str(exc))
        return ExitCode.CAMERA
    try:
        return _with_camera(config, log, source, stop, started)
    finally:
        source.close()


def reader_of(config: PusherConfig) -> str:
    """Which reader reads the camera: the configured one, but FFmpeg's for ``rtsps://``."""
    return "ffmpeg" if config.rtsp_url.startswith("rtsps:") else config.rtsp_reader


def _open(config: PusherConfig) -> MuxerCamera:
    if reader_of(config) == "lean":
        return open_lean(config)
    return DemuxedCamera(*open_camera(config))


def _with_camera(
    config: PusherConfig,
    log: Log,
    source: MuxerCamera,
    stop: threading.Event,
    started: float,
) -> ExitCode | None:
    info = source.info
    log.info(
        "camera_open",
        codec=info.codec,
        width=info.width,
        height=info.height,
        profile=info.profile,
        seconds=round(time.monotonic() - started, 3),
    )
    if stop.is_set():
        log.info("stopped", reason="signal before publishing")
        return ExitCode.STOPPED
    if info.b_frames:
        log.info("engine_fallback", engine="aiortc", reason=B_FRAMES)
        return FALLBACK
    reader = "rtsp-tcp-lean-reader" if reader_of(config) == "lean" else "rtsp-tcp-demux"
    elements = [reader, *PIPELINE]
    log.info("pipeline", engine="ffmpeg", elements=elements, decoder=None, encoder=None)
    try:
        cert = make_certificate()
    except CertificateError as exc:
        log.error("whip_failed", reason=f"no DTLS certificate: {exc}", status=None)
        return ExitCode.WHIP
    try:
        output = av.open(config.whip_url, "w", format="whip", options=_muxer_options(config, cert))
        # The lean reader's template is parameter sets only: the size comes from its SPS.
        output.add_stream_from_template(source.template(), width=info.width, height=info.height)
        return _publish(config, log, source, output, stop, started, cert)
    except (av.error.FFmpegError, OSError) as exc:
        log.error("whip_failed", reason=f"cannot set up the muxer: {exc}", status=None)
        return ExitCode.WHIP
    finally:
        cert.remove()


def _muxer_options(config: PusherConfig, cert: Certificate) -> dict[str, str]:
    options = {
        "whip_flags": "dtls_active",
        "cert_file": str(cert.cert_file),
        "key_file": str(cert.key_file),
        "handshake_timeout": str(round(config.ice_connect_timeout_s * 1000)),  # ICE + DTLS, ms
        "pkt_size": str(RTP_PACKET_BYTES),
    }
    if config.whip_token:
        options["authorization"] = config.whip_token
    return options


def _publish(
    config: PusherConfig,
    log: Log,
    source: MuxerCamera,
    output: OutputContainer,
    stop: threading.Event,
    started: float,
    cert: Certificate,
) -> ExitCode | None:
    bound = config.whip_timeout_s + config.ice_connect_timeout_s + DEADLINE_MARGIN_S
    no_answer = f"the WHIP endpoint did not set up a session within {bound:.0f} s"
    try:
        with hard_deadline(bound, ExitCode.WHIP, _last_words(log, "whip_failed", no_answer)):
            output.start_encoding()  # the offer's POST, then ICE and DTLS
    except av.error.PatchWelcomeError:  # "Unsupported B frames by RTC": the SPS did not say
        log.info("engine_fallback", engine="aiortc", reason=B_FRAMES)
        _close(log, output, published=False)
        return FALLBACK
    except (av.error.FFmpegError, OSError) as exc:
        log.error("whip_failed", reason=str(exc), status=_status(exc))
        _close(log, output, published=False)
        return ExitCode.WHIP
    cert.remove()  # FFmpeg has read it
    log.info("publishing", codec="H264", session=None, seconds=round(time.monotonic() - started, 3))
    pump = _Pump(log, source, output, stop)
    pump.thread.start()
    stalled = _watch(config, log, pump, stop)
    # The pump ends at its next packet, or when FFmpeg's socket timeout fails a stalled read.
    # Once ``stop`` is set it never muxes again, so the trailer below cannot race it.
    pump.thread.join(config.rtsp_read_timeout_s + DEADLINE_MARGIN_S)
    if pump.b_frames:  # the lean reader's SPS did not announce them; the slices did
        log.info("engine_fallback", engine="aiortc", reason=B_FRAMES)
        _close(log, output)
        return FALLBACK
    code = _outcome(log, pump, stalled)
    _close(log, output)
    return code


def _watch(config: PusherConfig, log: Log, pump: _Pump, stop: threading.Event) -> str | None:
    """Until ``stop``: trim the heap each second, log stats, and fail a stalled camera (one
    that stays connected but sends no video). Returns the stall's reason, if that ended it."""
    trim = heap_trimmer()
    stats = pump.stats
    seen, seen_at = 0, time.monotonic()
    line = StatsLine(log, stats, config.stats_interval_s, seen_at)
    while not stop.wait(1.0):
        trim()
        now = time.monotonic()
        if stats.packets != seen:
            seen, seen_at = stats.packets, now
        elif now - seen_at > config.rtsp_read_timeout_s:
            stop.set()
            return f"no packet from the camera for {now - seen_at:.1f} s"
        line.tick(now)
    return None


def _outcome(log: Log, pump: _Pump, stalled: str | None) -> ExitCode:
    camera = stalled or pump.camera_failure
    if camera is not None:
        log.error("camera_failed", reason=camera)
        return ExitCode.CAMERA
    if pump.whip_failure is not None:
        log.error("whip_failed", reason=pump.whip_failure, status=None)
        return ExitCode.WHIP
    log.info("stopping", reason="signal")
    return ExitCode.STOPPED


def _close(log: Log, output: OutputContainer, *, published: bool = True) -> None:
    """Write the trailer and free the muxer, which DELETEs a session it set up. Bounded: a
    hang exits 3. ``published``: the session was up (its DELETE is then logged)."""
    hung = _last_words(log, "whip_delete_failed", "the WHIP endpoint did not answer the DELETE")
    try:
        with hard_deadline(DELETE_TIMEOUT_S + DEADLINE_MARGIN_S, ExitCode.WHIP, hung):
            output.close()
    except (av.error.FFmpegError, OSError) as exc:
        if published:
            log.error("whip_delete_failed", reason=str(exc))
        return
    if published:  # the muxer does not say how the endpoint answered, only whether it failed
        log.info("whip_deleted", status=None)


def _status(exc: BaseException) -> int | None:
    for kind, status in HTTP_STATUS.items():
        if isinstance(exc, kind):
            return status
    return None


def _last_words(log: Log, event: str, reason: str) -> Callable[[], None]:
    """What a hard deadline logs before it ends the process with exit 3."""

    def speak() -> None:
        log.error(event, reason=reason)
        log.info("exit", code=int(ExitCode.WHIP), reason="whip")

    return speak
