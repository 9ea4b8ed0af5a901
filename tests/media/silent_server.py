"""A WHIP endpoint that hangs: it accepts TCP connections, reads what comes and never answers.

What a pusher meets when an ingress hangs (overloaded, or a proxy in front of a dead one): the
pusher must give up within its bound and exit 3. ``python -m tests.media.silent_server --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(65536):
            pass  # read everything, answer nothing
    finally:
        writer.close()


async def _serve(host: str, port: int) -> None:
    server = await asyncio.start_server(_hold, host, port)
    print(json.dumps({"event": "ready", "url": f"http://{host}:{port}/w"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.media.silent_server",
        description="Accept TCP connections and never answer (a hung WHIP endpoint).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, required=True, help="listen port")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
