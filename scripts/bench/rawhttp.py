"""A lean HTTP/1.1 keep-alive client for load on loopback: a request is one write, an answer is a
status line, headers and a Content-Length (or chunked) body. Nothing else: no redirects, no
compression, no cookies. httpx spends about a millisecond of CPU per request, which on a 2-core
machine is CPU taken from the server under test; this spends a few tens of microseconds."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping


class Connection:
    """One keep-alive connection; ``request`` calls must not overlap."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None, "use it as an async context manager"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self._writer.drain()
        status = int((await self._reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        length, chunked = None, False
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._chunks()
        return status, await self._reader.readexactly(length or 0)

    async def _chunks(self) -> bytes:
        assert self._reader is not None
        parts = []
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        await self._reader.readuntil(b"\r\n")
        return b"".join(parts)
