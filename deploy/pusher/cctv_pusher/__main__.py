"""``python -m cctv_pusher``: the container's entrypoint (see ``--help``)."""

from __future__ import annotations

import argparse
import sys

from . import ExitCode
from .config import ConfigError, PusherConfig
from .logs import Log, Redactor, url_secrets

HELP = """\
Pull one camera's RTSP stream over TCP and publish its H.264 unchanged over WHIP (RFC 9725).
Nothing is decoded or re-encoded. The orchestrator starts one per watched camera.

environment:
  RTSP_URL       camera stream, rtsp:// or rtsps://; credentials in it are never logged
  WHIP_URL       WHIP endpoint (LiveKit ingress: the ingress URL, e.g. https://host/w)
  WHIP_TOKEN     bearer token (LiveKit: the ingress stream key); never logged
  CAMERA_ID      camera id, added to every log line
  PUSHER_ENGINE  ffmpeg (default): FFmpeg's own WHIP muxer, about 0.4 of the CPU and
                 memory; it verifies neither the ingress's DTLS fingerprint nor its HTTPS
                 certificate, so use it where the path to the ingress is trusted.
                 aiortc: verifies both; also what a camera with B-frames is published with
                 (the muxer refuses them), whichever engine is set
  PUSHER_RTSP_READER                how the ffmpeg engine reads the camera: lean (default),
                                    the pusher's own RTSP/TCP reader (Basic or Digest auth,
                                    batched reads: about 10 % less CPU per 1080p camera, and
                                    it opens the camera about 350 ms sooner); ffmpeg,
                                    FFmpeg's demuxer, for a camera the lean
                                    one cannot talk to. rtsps:// always uses ffmpeg; so does
                                    the aiortc engine
  PUSHER_RTSP_OPEN_TIMEOUT_SECONDS  connect + DESCRIBE/SETUP/PLAY bound (default 10)
  PUSHER_RTSP_READ_TIMEOUT_SECONDS  longest gap between packets before the camera counts
                                    as down (default 5)
  PUSHER_WHIP_TIMEOUT_SECONDS       each WHIP HTTP request (default 10)
  PUSHER_ICE_TIMEOUT_SECONDS        ICE + DTLS after the answer (default 15); with ffmpeg,
                                    the POST + ICE + DTLS together get the WHIP timeout
                                    plus this plus 2 s, then exit 3
  PUSHER_STATS_INTERVAL_SECONDS     how often a stats line is logged (default 10)
  PUSHER_ICE_SERVERS                comma-separated stun:/turn: URLs (default: none, host
                                    candidates only)
  RTSP_URL_FILE, WHIP_URL_FILE, WHIP_TOKEN_FILE
                                    a file holding that value instead (a mounted secret)
  PUSHER_ENV_FILE                   a file of KEY='value' lines (shell quoting) read over the
                                    environment: where a Swarm secret holds the ones above

exit codes:
  0  stopped by SIGTERM/SIGINT; the WHIP session was deleted
  1  camera failed: unreachable, refused, not H.264, stalled or ended
  2  bad configuration
  3  WHIP failed: endpoint refused, unreachable or not answering in time, ICE or DTLS
     failed, or the session dropped (also when the session's DELETE hangs)

Logs are JSON lines on stderr.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cctv_pusher", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    try:
        config = PusherConfig.from_env()
    except ConfigError as exc:
        Log(Redactor([]))("error", "bad_config", reason=str(exc))
        return ExitCode.CONFIG
    secrets = [*url_secrets(config.rtsp_url), *url_secrets(config.whip_url), config.whip_token]
    log = Log(Redactor(secrets), config.camera_id)
    code = publish(config, log)
    log.info("exit", code=int(code), reason=code.name.lower())
    return int(code)


def publish(config: PusherConfig, log: Log) -> ExitCode:
    """Run the configured engine; a camera the FFmpeg engine cannot carry goes to aiortc.

    Each engine is imported only when it runs: aiortc's import alone is much of what the
    FFmpeg engine saves."""
    if config.engine == "ffmpeg":
        from .ffmpeg_engine import FALLBACK
        from .ffmpeg_engine import run as run_ffmpeg

        code = run_ffmpeg(config, log)
        if code is not FALLBACK:
            return code
    import asyncio

    from .aiortc_engine import run as run_aiortc

    return asyncio.run(run_aiortc(config, log))


if __name__ == "__main__":
    sys.exit(main())
