"""BodyStream: one request's input stream, fed by the connection and read by the handler.

Rules: runs on the event loop only; never buffers beyond what the connection's flow control
allows (the connection pauses reading above its high-water mark and resumes below the low one).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from smisk.protocol.records import Content

__all__ = ["BodyStream", "ClientGone"]


class ClientGone(ConnectionError):
    """The request was aborted or its connection closed; no more input or output is possible."""


class BodyStream:
    """An async byte stream with flow-control accounting."""

    __slots__ = ("_chunks", "_discarding", "_eof", "_error", "_on_consumed", "_size", "_waiter")

    def __init__(self, on_consumed: Callable[[int], None]) -> None:
        self._chunks: deque[Content] = deque()  # bytes, or views of what the peer sent
        self._size = 0
        self._eof = False
        self._discarding = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_consumed = on_consumed

    @property
    def at_eof(self) -> bool:
        """True once the stream has ended and every byte was read."""
        return self._eof and not self._chunks

    @property
    def eof_received(self) -> bool:
        """True once the end of the stream arrived (bytes may still wait to be read)."""
        return self._eof

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return self._size

    def feed(self, data: Content) -> None:
        """Add a chunk received from the peer."""
        if self._discarding:
            self._on_consumed(len(data))
            return
        self._chunks.append(data)
        self._size += len(data)
        self._wake()

    def feed_eof(self) -> None:
        """Mark the end of the stream."""
        self._eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """Make pending and future reads raise ``error`` (abort, disconnect)."""
        if self._error is None and not self.at_eof:
            self._error = error
        self._wake()

    def discard(self) -> None:
        """Drop what is buffered and whatever arrives later, releasing its flow-control credit."""
        self._discarding = True
        dropped, self._size = self._size, 0
        self._chunks.clear()
        if dropped:
            self._on_consumed(dropped)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        while not self._chunks and not self._eof:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes (all that remain when ``n`` < 0): as much of what has
        arrived as fits, waiting only while nothing has; b"" only at the end."""
        if n < 0:
            return await self.read_all()
        if n == 0:
            return b""
        await self._wait()
        if not self._chunks:
            return b""
        parts, size = self._take(n)
        self._consumed(size)
        if len(parts) == 1:
            part = parts[0]
            return part if type(part) is bytes else bytes(part)
        return b"".join(parts)

    def _take(self, n: int) -> tuple[list[Content], int]:
        """Up to ``n`` bytes from the front of the buffered chunks; the rest of a chunk that
        does not fit stays in front, as a view (nothing is copied twice)."""
        chunks, size = self._chunks, 0
        parts: list[Content] = []
        while chunks and size < n:
            chunk = chunks[0]
            room = n - size
            if len(chunk) > room:
                view = chunk if type(chunk) is memoryview else memoryview(chunk)
                chunks[0] = view[room:]
                parts.append(view[:room])
                return parts, n
            parts.append(chunks.popleft())
            size += len(chunk)
        return parts, size

    async def read_all(self) -> bytes:
        """Return every remaining byte (waits for the end of the stream)."""
        parts: list[Content] = []
        while True:
            await self._wait()
            if not self._chunks:
                return b"".join(parts)
            parts += self._chunks
            self._chunks.clear()
            self._consumed(self._size)

    def _consumed(self, n: int) -> None:
        self._size -= n
        self._on_consumed(n)
