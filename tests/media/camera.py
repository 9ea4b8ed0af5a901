"""A simulated CCTV camera: an RTSP server streaming a pre-encoded H.264 test pattern.

In-process tests use :class:`CameraSimulator`; anything that needs a separate process (a
pusher container, a shell script) runs ``python -m tests.media.camera``, which prints one
JSON ``ready`` line once it listens and exits 0 on SIGTERM/SIGINT.

``stop()`` drops every connection at once, which is what a client sees when a camera loses
power or its switch port goes down (minus the TCP timeout: the simulator's kernel still
resets the connections, so tests need not wait minutes to observe it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from urllib.parse import quote

from tests.media.encoded_loop import PROFILES, EncodedLoop, check_encoding, encode_loop
from tests.media.rtp_pacer import Pacer
from tests.media.rtsp_server import RtspConnection, ServerStats, StreamConfig


class CameraSimulator:
    """One camera: one RTSP path, one H.264 stream, any number of TCP clients."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8554,
        path: str = "/cam",
        size: tuple[int, int] = (640, 360),
        fps: int = 25,
        gop: int | None = None,
        loop_seconds: float = 4.0,
        user: str | None = None,
        password: str | None = None,
        profile: str = "baseline",
        b_frames: int = 0,
        auth: str = "basic",
    ) -> None:
        """``profile`` (``baseline``, ``main``, ``high``) and ``b_frames`` (0-3, not with
        baseline) choose what the camera encodes; the default is Constrained Baseline without
        B-frames, ``profile="high", b_frames=2`` a High-profile stream with B-frames. ``auth``:
        how credentials are asked for, ``basic`` or ``digest``."""
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        check_encoding(profile, b_frames)
        self.host = host
        self.port = port  # 0 picks a free port; the real one is known after start()
        self.path = "/" + path.strip("/")
        self.size = size
        self.fps = fps
        self.gop = gop or fps
        self.loop_seconds = loop_seconds
        self.user = user
        self.password = password
        self.auth = auth  # how the credentials are asked for: "basic" or "digest"
        self.profile = profile
        self.b_frames = b_frames
        self.stats = ServerStats()
        self.errors: list[BaseException] = []  # unexpected handler failures; tests assert none
        self._loop: EncodedLoop | None = None
        self._pacer: Pacer | None = None
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The stream URL without credentials (safe to log)."""
        return f"rtsp://{self._authority}{self.path}"

    @property
    def credentials_url(self) -> str:
        """The stream URL with the configured user and password embedded."""
        if self.user is None:
            return self.url
        userinfo = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}"
        return f"rtsp://{userinfo}@{self._authority}{self.path}"

    @property
    def clients_seen(self) -> int:
        return self.stats.clients_seen

    @property
    def transports_seen(self) -> tuple[str, ...]:
        """Every SETUP's Transport header as sent, refused ones included."""
        return tuple(self.stats.transports_seen)

    @property
    def encoded(self) -> EncodedLoop:
        if self._loop is None:
            raise RuntimeError("the camera has not been started")
        return self._loop

    @property
    def nal_digests(self) -> frozenset[str]:
        """SHA-256 of every NAL unit in the loop: what any client may legitimately receive."""
        return self.encoded.nal_digests

    @property
    def encode_seconds(self) -> float:
        return self.encoded.encode_seconds

    async def start(self) -> None:
        if self._loop is None:  # a restarted camera keeps its loop (and so its digests)
            width, height = self.size
            self._loop = await asyncio.to_thread(
                encode_loop,
                width,
                height,
                self.fps,
                self.gop,
                self.loop_seconds,
                self.profile,
                self.b_frames,
            )
        self._pacer = Pacer(self._loop)
        self._server = await asyncio.start_server(
            self._on_client, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._pacer.start()

    async def stop(self) -> None:
        """Close the listener and every client connection now, like a power cut."""
        if self._server is not None:
            self._server.close()
        for writer in self._clients.values():
            writer.transport.abort()
        if self._clients:
            _, pending = await asyncio.wait(list(self._clients), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._pacer is not None:
            await self._pacer.stop()
        if self._server is not None:
            await self._server.wait_closed()
        self._server = None
        self._pacer = None

    async def __aenter__(self) -> CameraSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self._pacer is not None and self._loop is not None
        self._clients[task] = writer
        self.stats.clients_seen += 1
        config = StreamConfig(self.path, self._loop, self.user, self.password, self.auth)
        try:
            await RtspConnection(reader, writer, config, self._pacer, self.stats).serve()
        except ConnectionError:
            pass  # the client went away mid-write: normal for a camera
        except Exception as exc:
            self.errors.append(exc)
        finally:
            writer.close()  # flushes a last response (a 400, say) unless stop() aborted it
            try:
                await asyncio.wait_for(writer.wait_closed(), timeout=5)
            except (TimeoutError, ConnectionError):
                writer.transport.abort()
            del self._clients[task]


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return int(width), int(height)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.media.camera",
        description="Simulated CCTV camera: serves a looping H.264 colour-bar pattern over "
        "RTSP (TCP-interleaved RTP only; UDP SETUPs get 461). Prints one JSON line "
        '{"event": "ready", "url": ...} to stdout once listening (the URL never carries '
        "the password); exits 0 on SIGTERM/SIGINT. The loop is pre-encoded with libx264 "
        "(constrained baseline by default, CBR, SPS/PPS before every IDR) before the port "
        "opens.",
    )
    default = " (default: %(default)s)"
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on" + default)
    parser.add_argument("--port", type=int, default=8554, help="TCP port, 0: any free" + default)
    parser.add_argument("--path", default="/cam", help="stream path" + default)
    parser.add_argument(
        "--size", type=_size, default="640x360", metavar="WxH", help="even picture size" + default
    )
    parser.add_argument("--fps", type=int, default=25, help="frames per second" + default)
    parser.add_argument("--gop", type=int, help="IDR interval in frames (default: fps)")
    parser.add_argument(
        "--loop-seconds", type=float, default=4.0, help="seconds, whole GOPs" + default
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="baseline",
        help="H.264 profile; baseline is Constrained Baseline" + default,
    )
    parser.add_argument(
        "--b-frames",
        type=int,
        choices=range(4),
        default=0,
        metavar="N",
        help="B-frames between reference frames, 0-3, main/high only" + default,
    )
    parser.add_argument("--user", help="require HTTP Basic auth (401 otherwise) with this user")
    parser.add_argument("--password", help="the password for --user")
    parser.add_argument(
        "--digests",
        type=Path,
        metavar="FILE",
        help="write the JSON list of the loop's NAL-unit SHA-256s here before 'ready'",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    camera = CameraSimulator(
        args.host, args.port, args.path, args.size, args.fps, args.gop, args.loop_seconds,
        args.user, args.password, args.profile, args.b_frames,
    )  # fmt: skip
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await camera.start()
    try:
        width, height = camera.size
        frames = len(camera.encoded.access_units)
        print(
            f"encoded {frames} frames at {width}x{height} in {camera.encode_seconds:.2f} s",
            file=sys.stderr,
        )
        if args.digests is not None:
            args.digests.write_text(json.dumps(sorted(camera.nal_digests)))
        ready = {"event": "ready", "url": camera.url, "encode_seconds": camera.encode_seconds}
        print(json.dumps(ready), flush=True)
        await stopping.wait()
    finally:
        await camera.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (args.user is None) != (args.password is None):
        _parser().error("--user and --password go together")
    if args.b_frames and args.profile == "baseline":
        _parser().error("--b-frames needs --profile main or high (Baseline has no B slices)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
