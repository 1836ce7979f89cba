"""A TCP proxy a test can cut and restore: a server outage as one process sees it, without
stopping a server other tests share."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``host:port`` while open; while cut, it drops every
    connection it holds and turns new ones away (as a server that went down)."""

    def __init__(self, host: str, port: int, *, open_: bool = True) -> None:
        self.host = host
        self.target_port = port
        self.forwarding = open_
        self.turned_away = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def to(cls, address: str, *, open_: bool = True) -> TcpProxy:
        """A proxy to ``host:port``."""
        host, port = address.rsplit(":", 1)
        return cls(host, int(port), open_=open_)

    async def start(self) -> int:
        """Starts listening; returns the local port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        """Drops every connection and turns new ones away."""
        self.forwarding = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        """Forwards again."""
        self.forwarding = True

    async def stop(self) -> None:
        """Stops listening and drops what it holds."""
        self.cut()
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.forwarding:
            self.turned_away.set()
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()
            self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
