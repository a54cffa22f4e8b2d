"""Stream: the classic file-like object over a request's input or output.

Rules: blocking methods (``read``, ``readline``, ``write`` with a full buffer, ``flush``) are for
sync handlers running in threads; async handlers use the ``a``-prefixed awaitables. Input is read
from the loop in chunks and buffered here, so line reads do not cost one loop hand-off each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from smisk.core.channel import Channel

if TYPE_CHECKING:
    from smisk.server import BodyStream

__all__ = ["Stream"]

READ_CHUNK = 64 * 1024  # bytes fetched from the loop per hand-off (at most)


class _Sink:
    """Where an output stream's bytes go (a Response, or the request's STDERR)."""

    def emit(self, data: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    async def aflush(self) -> None:
        raise NotImplementedError


class Stream:
    """A file-like stream connected to the front-end web server."""

    __module__ = "smisk.core"  # the classic, documented home

    __slots__ = ("_buffer", "_channel", "_eof", "_sink", "_source")

    def __init__(
        self, channel: Channel, source: BodyStream | None = None, sink: _Sink | None = None
    ) -> None:
        self._channel = channel
        self._source = source
        self._sink = sink
        self._buffer = bytearray()
        self._eof = source is None

    # -- input -------------------------------------------------------------------------------

    def _take(self, size: int) -> bytes | None:
        """Return ``size`` bytes (all when < 0) if buffered, else None (more input is needed)."""
        if size < 0:
            if not self._eof:
                return None
        elif len(self._buffer) < size and not self._eof:
            return None
        return self._pop(len(self._buffer) if size < 0 else size)

    def _take_line(self, size: int) -> bytes | None:
        end = self._buffer.find(b"\n")
        if end >= 0 and (size < 0 or end < size):
            return self._pop(end + 1)
        if 0 <= size <= len(self._buffer):
            return self._pop(size)
        return self._pop(len(self._buffer)) if self._eof else None

    def _pop(self, n: int) -> bytes:
        if n >= len(self._buffer):  # all of it: one copy, not a slice and a copy
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _with_rest(self, rest: bytes) -> bytes:
        """What is buffered followed by ``rest`` (the remainder of the stream)."""
        self._eof = True
        return self._pop(len(self._buffer)) + rest if self._buffer else rest

    def _fed(self, chunk: bytes) -> None:
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    def _unread(self, data: bytes) -> None:
        """Put ``data`` back in front of what is left to read."""
        if data:
            self._buffer[:0] = data

    def _source_stream(self) -> BodyStream:
        if self._source is None:
            raise OSError("stream not readable")
        return self._source

    def _fill(self) -> None:
        self._fed(self._channel.block(self._source_stream().read, READ_CHUNK))

    async def _afill(self) -> None:
        self._fed(await self._source_stream().read(READ_CHUNK))

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (to the end when omitted or negative); b"" at the end."""
        if size < 0 and not self._eof:  # the rest in one hand-off, joined once
            return self._with_rest(self._channel.block(self._source_stream().read_all))
        while (data := self._take(size)) is None:
            self._fill()
        return data

    def _take_some(self, size: int) -> bytes | None:
        if self._buffer:
            return self._pop(min(size, len(self._buffer)))
        return b"" if self._eof else None

    def read1(self, size: int = READ_CHUNK) -> bytes:
        """Read up to ``size`` bytes, at least one unless at the end (one hand-off at most)."""
        while (data := self._take_some(size)) is None:
            self._fill()
        return data

    async def aread1(self, size: int = READ_CHUNK) -> bytes:
        """Awaitable ``read1``."""
        while (data := self._take_some(size)) is None:
            await self._afill()
        return data

    def readline(self, size: int = -1) -> bytes:
        """Read one line including its ``\\n`` (at most ``size`` bytes); b"" at the end."""
        while (data := self._take_line(size)) is None:
            self._fill()
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read lines until the end (or until ``hint`` bytes have been read)."""
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    async def aread(self, size: int = -1) -> bytes:
        """Awaitable ``read``."""
        if size < 0 and not self._eof:  # the rest, joined once
            return self._with_rest(await self._source_stream().read_all())
        while (data := self._take(size)) is None:
            await self._afill()
        return data

    async def areadline(self, size: int = -1) -> bytes:
        """Awaitable ``readline``."""
        while (data := self._take_line(size)) is None:
            await self._afill()
        return data

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> bytes:
        line = await self.areadline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- output ------------------------------------------------------------------------------

    def _output(self) -> _Sink:
        if self._sink is None:
            raise OSError("stream not writable")
        return self._sink

    def write(self, data: bytes | str, length: int = -1) -> None:
        """Write bytes (str is encoded as UTF-8); ``length`` limits how many are written."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if length >= 0:
            raw = raw[:length]
        if raw:
            self._output().emit(raw)

    def write_byte(self, value: int) -> None:
        """Write one byte."""
        self._output().emit(bytes((value,)))

    def writelines(self, lines: Iterable[Any]) -> None:
        """Write each item (bytes as is, anything else as ``str(item)`` in UTF-8)."""
        for item in lines:
            self.write(item if isinstance(item, bytes | str) else str(item))

    def flush(self) -> None:
        """Send buffered output to the web server now (waits while the client is slow)."""
        self._output().flush()

    async def aflush(self) -> None:
        """Awaitable ``flush``."""
        await self._output().aflush()

    def close(self) -> None:
        """Flush an output stream; input streams need no closing."""
        if self._sink is not None:
            self.flush()
