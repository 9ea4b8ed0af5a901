"""A minimal keep-alive HTTP/1.1 client for load generation.

On a 2-core machine the load generator shares the CPU with the service and Valkey; aiohttp
costs the client about as much CPU per request as the service spends, which shows up as
queueing in the service's latency. This client sends pre-built request bytes and parses only
the status line and ``Content-Length``, so nearly all measured time is the service's.
"""

from __future__ import annotations

import asyncio


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        status, _, body = await self.exchange(raw)
        return status, body

    async def exchange(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """Status, headers (lower-case names) and body."""
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers: dict[bytes, bytes] = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0") or 0)
        body = await self._reader.readexactly(length) if length else b""
        return status, headers, body

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def build(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
