"""A TCP proxy in front of the local Docker engine's unix socket that holds back container
creates. Point one orchestrator's ``DOCKER_HOST`` at it to freeze that process in the middle
of a start (then SIGKILL it); the held create still reaches the engine afterwards, as it
would when a client dies after sending. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib

ENGINE_SOCKET = "/var/run/docker.sock"


class DelayingDockerProxy:
    def __init__(self, delay_seconds: float, socket_path: str = ENGINE_SOCKET) -> None:
        self.delay_seconds = delay_seconds
        self.socket_path = socket_path
        self.delayed_creates = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DelayingDockerProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"tcp://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        upstream = asyncio.create_task(self._pipe(reader, engine_writer, delay=True))
        downstream = asyncio.create_task(self._pipe(engine_reader, writer, delay=False))
        try:
            await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
            # Let a held create reach the engine even though its client is gone.
            await asyncio.wait([upstream], timeout=self.delay_seconds + 5)
        finally:
            for pipe in (upstream, downstream):
                pipe.cancel()
            await asyncio.wait([upstream, downstream])
            for w in (writer, engine_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, delay: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                if delay and b"/containers/create" in chunk:
                    self.delayed_creates += 1
                    await asyncio.sleep(self.delay_seconds)
                sink.write(chunk)
                await sink.drain()
