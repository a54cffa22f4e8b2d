"""Response: headers and output of the current request, the classic way.

Rules: output is buffered here and handed to the loop in batches (a small sync response costs one
hand-off, at the end); a full buffer is flushed with backpressure (threads wait, async handlers
``await response.drain()``). Header lines are checked by ``smisk.core.headers`` (token names;
no control character but HTAB) before anything is sent; a bytes line is an error, never silently dropped.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from smisk.core.channel import Channel
from smisk.core.cookies import format_set_cookie
from smisk.core.headers import split_header_line
from smisk.core.stream import Stream, _Sink

if TYPE_CHECKING:
    from smisk.core.application import Application
    from smisk.core.http_request import Request
    from smisk.server import RequestCycle

__all__ = ["Response"]

# Buffered output above this is sent on; a response up to this size leaves a handler thread in
# one hand-off, at the end.
FLUSH_THRESHOLD = 256 * 1024

# Front ends that serve a file named in a response header, matched on SERVER_SOFTWARE in order.
SENDFILE_HEADERS = (
    ("lighttpd/1.4", "X-LIGHTTPD-send-file"),
    ("lighttpd/", "X-Sendfile"),
    ("Apache/2", "X-Sendfile"),
    ("nginx/", "X-Accel-Redirect"),
)
# Distinct header lines whose check is remembered; lines that change with every response
# (Content-Length) only cycle through it. Set-Cookie lines are never kept: they carry secrets
# (session and login tokens) that must not outlive their response in memory.
HEADER_LINE_CACHE = 256


@functools.lru_cache(maxsize=HEADER_LINE_CACHE)
def _checked_line(line: str) -> tuple[str, bool]:
    """``line`` as ``split_header_line`` checks and normalises it, and whether it names the
    Content-Type. Applications send the same few lines with every response, so each is checked
    once (a refused line raises every time: errors are not cached)."""
    name, value = split_header_line(line)
    return f"{name}: {value}", name.lower() == "content-type"


def _is_cookie(line: str) -> bool:
    return line[:10].lower() == "set-cookie"


def _check_cookie(line: str) -> tuple[str, bool]:
    """``_checked_line`` for a Set-Cookie line, without remembering it."""
    name, value = split_header_line(line)
    return f"{name}: {value}", False


class Response(_Sink):
    """A HTTP response: ``headers`` (lines such as ``"Content-Type: text/plain"``) and output."""

    __module__ = "smisk.core"  # the classic, documented home

    headers: list[Any]
    has_begun: bool = False
    _cycle: RequestCycle | None = None
    _app: Application | None = None
    _request: Request | None = None
    _channel: Channel | None = None
    _out: Stream | None = None
    _file_to_stream: str | None = None

    def __init__(self) -> None:
        self.headers = []
        self.has_begun = False
        self._pending: list[bytes] = []
        self._pending_size = 0

    def _attach(
        self, cycle: RequestCycle, app: Application, channel: Channel, request: Request
    ) -> None:
        self._cycle, self._app, self._channel, self._request = cycle, app, channel, request
        if not hasattr(self, "_pending"):  # a subclass __init__ that skipped ours
            self._pending, self._pending_size = [], 0
            self.headers, self.has_begun = [], False

    @property
    def out(self) -> Stream:
        """The output stream (writes here do not call ``begin()``)."""
        if self._out is None:
            if self._channel is None:
                raise OSError("no active request")
            self._out = Stream(self._channel, sink=self)
        return self._out

    # -- headers -----------------------------------------------------------------------------

    def find_header(self, prefix: str) -> int:
        """Index of the first header line starting with ``prefix`` (case-insensitive), else -1."""
        if not isinstance(prefix, str):
            raise TypeError("first argument must be a string")
        folded = prefix.lower()
        for index, line in enumerate(self.headers or ()):
            if isinstance(line, str) and line[: len(folded)].lower() == folded:
                return index
        return -1

    def set_cookie(
        self,
        name: str,
        value: str,
        comment: str | None = None,
        domain: str | None = None,
        path: str | None = None,
        secure: bool = False,
        version: int = 1,
        max_age: int = -1,
        http_only: bool = False,
        same_site: str | None = None,
    ) -> None:
        """Add a ``Set-Cookie`` header (before output has begun)."""
        if self.has_begun:
            raise OSError("Cookies can not be set when output has already begun.")
        line = format_set_cookie(
            name, value, comment, domain, path, secure, version, max_age, http_only, same_site
        )
        self.headers.append(f"Set-Cookie: {line}")

    def send_file(self, path: str) -> None:
        """Have the front end send the file at ``path`` (X-Accel-Redirect, X-Sendfile, ...);
        without front-end support the server streams the file itself, off the loop: exactly
        the Content-Length it announces (the size at open time, or the application's own), or
        to the end without a length for files that report size 0 (``/proc``). A file that
        shrinks while sent ends the connection, so the front end sees a truncated response."""
        if not isinstance(path, str):
            raise TypeError("first argument must be a string")
        if self.has_begun:
            raise OSError("output has already begun")
        header = self._sendfile_header()
        if header:
            self.headers.append(f"{header}: {path}")
            return
        self._file_to_stream = path

    def _sendfile_header(self) -> str | None:
        configured = getattr(self._app, "sendfile_header", None)
        if configured is not None:
            return configured or None  # "" forces streaming by the server
        request = self._request
        software = request.env.get("SERVER_SOFTWARE", "") if request is not None else ""
        for marker, header in SENDFILE_HEADERS:
            if marker in software:
                return header
        return None

    def _header_block(self) -> bytes:
        request = self._request
        lines = [*request._response_headers()] if request is not None else []
        has_type = self._file_to_stream is not None  # its type is added from the file name
        for line in self.headers or ():
            if isinstance(line, str):
                # TypeError/ValueError: nothing is sent
                text, is_type = _check_cookie(line) if _is_cookie(line) else _checked_line(line)
                has_type = has_type or is_type
                lines.append(text)
            elif isinstance(line, bytes | bytearray):
                split_header_line(line)  # refused (TypeError): a bytes line is meant as a header
            # classic Smisk skipped items of other types
        if not has_type:
            charset = self._app.charset if self._app is not None else "utf-8"
            lines.append(f"Content-Type: text/html; charset={charset}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8")

    def begin(self) -> None:
        """Send the headers; output has begun afterwards."""
        if self.has_begun:
            raise OSError("output has already begun")
        block = self._header_block()
        self.has_begun = True
        self.emit(block)

    # -- body --------------------------------------------------------------------------------

    def _encode(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        if isinstance(item, str):
            return item.encode(self._app.charset if self._app is not None else "utf-8")
        if isinstance(item, bytearray | memoryview):
            return bytes(item)
        return str(item).encode("utf-8")

    def write(self, data: bytes | str) -> None:
        """Write ``data`` (str is encoded with the app's charset), beginning output if needed."""
        if not isinstance(data, bytes | str | bytearray | memoryview):
            raise TypeError("first argument must be a str or bytes")
        raw = self._encode(data)
        if not raw:
            return
        if not self.has_begun:
            self.begin()
        self.emit(raw)

    def writelines(self, lines: Iterable[Any]) -> None:
        """Write each item (bytes, str, or anything via ``str()``), beginning output if needed."""
        for item in lines:
            raw = self._encode(item)
            if raw:
                if not self.has_begun:
                    self.begin()
                self.emit(raw)

    def __call__(self, *strings: Any) -> None:
        """Respond with a series of strings; same as ``writelines(strings)``."""
        self.writelines(strings)

    async def awrite(self, data: bytes | str) -> None:
        """Write ``data`` and wait while the client is slow (async handlers)."""
        self.write(data)  # a full buffer is handed to the transport here, without waiting
        if self._pending_size >= FLUSH_THRESHOLD:
            await self.aflush()
        elif self._cycle is not None:
            await self._cycle.protocol.drain()  # so wait while the transport is over its mark

    async def drain(self) -> None:
        """Send buffered output and wait until the transport accepts more (async handlers)."""
        await self.aflush()

    # -- buffering (the Stream sink) ----------------------------------------------------------

    def emit(self, data: bytes) -> None:
        """Buffer raw output; a full buffer is sent on."""
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= FLUSH_THRESHOLD:
            self.flush()

    def _take_pending(self) -> bytes:
        pending = self._pending
        if not pending:
            return b""
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_size = 0
        return data

    def flush(self) -> None:
        """Send buffered output now. A thread waits once the client is behind (see
        ``RequestCycle.post``); on the loop it is queued."""
        data = self._take_pending()
        if not data or self._cycle is None or self._channel is None:
            return
        if self._channel.threaded:
            if not self._cycle.post(data):  # the client is behind: wait for it
                self._channel.block(self._cycle.write, data)
        else:
            self._cycle.write_nowait(data)

    async def aflush(self) -> None:
        """Send buffered output and wait while the transport is paused."""
        data = self._take_pending()
        if self._cycle is not None:
            if data:
                await self._cycle.write(data)
            else:
                await self._cycle.protocol.drain()

    def _file_headers(self, path: str, size: int) -> int | None:
        """Add the headers of a file the server streams; return the body length announced:
        the application's own Content-Length, else ``size``. ``size`` 0 is what /proc-like
        files report whatever they hold: then no length is announced (None), the file is read
        to its end and the front end chunks it."""
        if self.find_header("content-type:") < 0:
            guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
            self.headers.append(f"Content-Type: {guessed}")
        index = self.find_header("content-length:")
        if index >= 0:
            declared = self.headers[index].partition(":")[2].strip()
            if not declared.isdigit():
                raise ValueError(f"invalid Content-Length for a streamed file: {declared!r}")
            return int(declared)
        if size <= 0:
            return None
        self.headers.append(f"Content-Length: {size}")
        return size
