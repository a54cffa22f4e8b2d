"""PEP 3333: runs a WSGI application as a handler for ``smisk.server.Server``.

Rules: the application runs in a bounded thread pool inside a copy of the request task's
context; the thread never touches the transport. Input is read from the loop in chunks;
output is collected in the thread and handed to the loop in batches: a small response costs one
hand-off (the thread's result), a streamed one is sent block by block without waiting, with a
blocking, draining write at least every ``STREAM_WINDOW`` bytes (backpressure). Files from
``wsgi.file_wrapper`` are read in the thread and sent in large chunks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from smisk.core.channel import Channel
from smisk.core.frontend import (
    NO_PROXIES,
    TrustedProxies,
    client_address,
    merge_params,
    mount_prefix,
    request_host,
    server_name,
    split_path,
    url_scheme,
)
from smisk.core.headers import check_header, check_status
from smisk.core.stream import Stream
from smisk.server.threads import HandlerThreads

if TYPE_CHECKING:
    from smisk.server import RequestCycle

__all__ = ["DEFAULT_THREADS", "FileWrapper", "WSGIApp", "WSGIHandler", "build_environ"]

log = logging.getLogger("smisk.wsgi")

DEFAULT_THREADS = 32  # handler threads: WSGI apps block, this many requests run in parallel
BATCH_LIMIT = 64 * 1024  # output held in the thread before one hand-off (a small response)
STREAM_WINDOW = 256 * 1024  # streamed bytes sent without waiting before a draining write
FILE_CHUNK = 256 * 1024  # bytes read per step from a wsgi.file_wrapper file

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_STATUS = re.compile(r"\d{3} [^\r\n\0]*")  # the reason goes on the Status: header line
_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    )
)
_ERROR_500 = (
    b"Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 22\r\n\r\nInternal Server Error\n"
)


class _ReadableFile(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def build_environ(
    params: Iterable[tuple[bytes, bytes]],
    script_name: str = "",
    trusted: TrustedProxies = NO_PROXIES,
) -> dict[str, Any]:
    """The CGI part of a PEP 3333 environ: every value a latin-1 "bytes as str".

    ``HTTP_PROXY`` is dropped, duplicate ``HTTP_*`` params are merged, SCRIPT_NAME/PATH_INFO are
    decided by ``smisk.core.frontend.split_path`` (``script_name`` is the mount prefix), empty
    CONTENT_TYPE and CONTENT_LENGTH are left out, and so are the ``HTTP_CONTENT_*`` duplicates
    of those two. HTTP_HOST gets nginx's port when it came without one (``request_host``); an
    empty HTTP_HOST is left out and an empty SERVER_NAME filled in (``_set_host``).
    Behind a ``trusted`` proxy, X-Forwarded-Proto sets ``wsgi.url_scheme`` and
    X-Forwarded-For REMOTE_ADDR (REMOTE_PORT is then ``"0"``).
    """
    env = merge_params(list(params))
    script, path_info, _raw = split_path(env, mount_prefix(script_name))
    environ = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in env.items()
        if name not in (b"HTTP_CONTENT_TYPE", b"HTTP_CONTENT_LENGTH")
    }
    _set_host(environ, env, trusted)
    environ["SCRIPT_NAME"] = script.decode("latin-1")
    environ["PATH_INFO"] = path_info.decode("latin-1")
    environ.setdefault("REQUEST_METHOD", "GET")
    environ.setdefault("QUERY_STRING", "")
    environ.setdefault("SERVER_PORT", "80")
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if not environ.get(name):
            environ.pop(name, None)
    environ["wsgi.url_scheme"] = url_scheme(env, trusted)
    host, port = client_address(env, trusted)
    if host != env.get(b"REMOTE_ADDR", b""):  # a trusted proxy named the client
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = host.decode(), port.decode()
    return environ


def _set_host(environ: dict[str, Any], env: dict[bytes, bytes], trusted: TrustedProxies) -> None:
    """HTTP_HOST and SERVER_NAME, the two names PEP 3333's URL reconstruction reads.

    A request without a Host (HTTP/1.0) comes from nginx as an empty HTTP_HOST (``$host``) and,
    without ``server_name``, an empty SERVER_NAME: frameworks then built ``http:///path``. The
    empty Host is dropped, so that SERVER_NAME counts, and that is the address the request came
    in on when the front end named none.
    """
    host = request_host(env, trusted)
    if host:
        environ["HTTP_HOST"] = host.decode("latin-1")
    else:
        environ.pop("HTTP_HOST", None)
    environ["SERVER_NAME"] = server_name(env).decode("latin-1") or "localhost"


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server sends itself, in large chunks from the thread."""

    def __init__(self, filelike: _ReadableFile, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        """Close the file (the server always calls this, also after errors)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _ErrorStream:
    """``wsgi.errors``: text written here goes to the ``smisk.wsgi`` log, one record a line."""

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            log.error("%s", self._partial)
            self._partial = ""


def _head_bytes(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"Status: {status}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def _check_response(status: str, headers: list[tuple[str, str]]) -> int | None:
    """Validate ``start_response`` arguments; return the Content-Length if there is one."""
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise ValueError(f"invalid WSGI status {status!r}")
    check_status(int(status[:3]))
    length = None
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"WSGI header names and values must be str: {name!r}: {value!r}")
        check_header(name, value)
        if not value.isascii() and not _is_latin1(value):
            raise ValueError(f"WSGI header {name} is not latin-1 (PEP 3333): {value!r}")
        lowered = name.lower()
        if lowered in _HOP_BY_HOP:
            raise ValueError(f"hop-by-hop header {name} is not allowed in a WSGI response")
        if lowered == "content-length" and value.strip().isdigit():
            length = int(value)
    return length


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class _Exchange:
    """One request's run in a handler thread: environ, start_response, output."""

    def __init__(self, handler: WSGIHandler, cycle: RequestCycle, channel: Channel) -> None:
        self.handler, self.cycle, self.channel = handler, cycle, channel
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None  # Content-Length the application declared
        self.sent = 0  # body bytes accepted so far
        self.head_sent = False  # the head left the thread: start_response can no longer replace it
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.unconfirmed = 0  # bytes handed to the loop without waiting for them to drain

    # -- the application side ----------------------------------------------------------------

    def environ(self) -> dict[str, Any]:
        handler = self.handler
        environ = build_environ(self.cycle.params, handler.script_name, handler.proxies)
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.input"] = Stream(self.channel, source=self.cycle.body)
        environ["wsgi.input_terminated"] = True  # the input ends at the end of the body
        environ["wsgi.errors"] = _ErrorStream()
        environ["wsgi.multithread"] = True
        environ["wsgi.multiprocess"] = handler.multiprocess
        environ["wsgi.run_once"] = False
        environ["wsgi.file_wrapper"] = FileWrapper
        return environ

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``."""
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        headers = list(headers)
        self.length = _check_response(status, headers)
        self.status, self.headers = status, headers
        self._drop_pending()
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write()`` callable: the data is on its way to the client when this returns."""
        self._accept(data)
        self._flush(wait=False)

    # -- output ------------------------------------------------------------------------------

    def _check_active(self) -> None:
        if not self.cycle.is_active:
            raise ConnectionError("the client went away")

    def _accept(self, data: bytes) -> None:
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"WSGI body blocks must be bytes, not {type(data).__name__}")
        self._check_active()
        if self.length is not None:
            data = data[: max(self.length - self.sent, 0)]  # never more than declared
        if data:
            self.pending.append(bytes(data))
            self.pending_size += len(data)
            self.sent += len(data)

    def _drop_pending(self) -> None:
        self.pending.clear()
        self.pending_size = 0
        self.sent = 0

    def _take(self) -> bytes:
        data = b"".join(self.pending)
        if not self.head_sent:
            assert self.status is not None
            data = _head_bytes(self.status, self.headers) + data
            self.head_sent = True
        self.pending.clear()
        self.pending_size = 0
        return data

    def _flush(self, wait: bool) -> None:
        """Hand pending output to the loop; ``wait`` (or a full window) waits for the drain."""
        if not self.pending and self.head_sent:
            return
        data = self._take()
        self.unconfirmed += len(data)
        if wait or self.unconfirmed > STREAM_WINDOW:
            self.unconfirmed = 0
            self.channel.block(self.cycle.write, data)
        else:
            self.channel.loop.call_soon_threadsafe(self._push, data)

    def _push(self, data: bytes) -> None:
        # On the loop: a disconnect in between makes the thread's next write raise instead.
        if self.cycle.is_active:
            self.cycle.write_nowait(data)

    @property
    def complete(self) -> bool:
        """True once the declared Content-Length was reached (nothing more can follow)."""
        return self.length is not None and self.sent >= self.length

    def _send_block(self, data: bytes, eager: bool) -> None:
        """One block of the result. ``eager``: more follows at once, so it may wait in the batch."""
        self._accept(data)
        if self.pending_size >= BATCH_LIMIT:
            self._flush(wait=True)
        elif not (eager or self.complete):
            self._flush(wait=False)

    def _send_file(self, wrapper: FileWrapper) -> None:
        size = max(wrapper.block_size, FILE_CHUNK)
        while not self.complete and (block := wrapper.filelike.read(size)):
            self._send_block(block, eager=True)

    def _send_result(self, result: Iterable[bytes]) -> None:
        if isinstance(result, FileWrapper):
            self._send_file(result)
            return
        eager = isinstance(result, list | tuple)  # every block is already in memory
        for block in result:
            if block:
                self._send_block(block, eager)
            if self.complete:
                break

    # -- one run -----------------------------------------------------------------------------

    def run(self) -> bytes | None:
        """Call the application; return the final output for END_REQUEST, None if gone."""
        result: Iterable[bytes] | None = None
        try:
            result = self.handler.app(self.environ(), self.start_response)
            self._send_result(result)
            if self.status is None:
                raise AssertionError("the application returned without calling start_response()")
        except Exception:
            return self._failed(sys.exc_info())
        finally:
            self._close(result)
        return self._take() if self.cycle.is_active else None

    def _failed(self, exc_info: Any) -> bytes | None:
        if not self.cycle.is_active:
            log.debug("client went away during a WSGI request", exc_info=exc_info)
            return None
        if self.head_sent:
            log.error("error in WSGI application after the response began", exc_info=exc_info)
            return b""
        log.error("error in WSGI application", exc_info=exc_info)
        self.status = None
        self._drop_pending()
        self.head_sent = True
        return _ERROR_500

    def _close(self, result: object) -> None:
        close = getattr(result, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            log.exception("error closing a WSGI response iterable")


class WSGIHandler:
    """Serves a WSGI application on ``smisk.server.Server``: ``Server(WSGIHandler(app))``.

    ``threads`` bounds how many requests the application handles at once; ``script_name`` is the
    mount prefix (the SCRIPT_NAME of the application), which overrides the front end's split;
    ``forwarded_allow_ips`` names the proxies whose X-Forwarded-Proto/-For are believed
    (addresses or networks, ``"*"`` for all; see ``smisk.core.frontend.TrustedProxies``).
    """

    def __init__(
        self,
        app: WSGIApp,
        threads: int | None = None,
        *,
        script_name: str = "",
        multiprocess: bool = False,
        forwarded_allow_ips: str | Sequence[str] | TrustedProxies = (),
    ) -> None:
        self.app = app
        self.script_name = script_name
        self.proxies = TrustedProxies.parse(forwarded_allow_ips)
        self.multiprocess = multiprocess
        self.executor = HandlerThreads(threads or DEFAULT_THREADS, "wsgi")
        self._channels: dict[asyncio.AbstractEventLoop, Channel] = {}

    def close(self) -> None:
        """Release the handler threads (waits for running requests)."""
        self.executor.shutdown(wait=True)

    def _channel(self, loop: asyncio.AbstractEventLoop) -> Channel:
        channel = self._channels.get(loop)
        if channel is None:
            channel = self._channels[loop] = Channel(loop, threaded=True)
        return channel

    async def __call__(self, cycle: RequestCycle) -> None:
        loop = asyncio.get_running_loop()
        exchange = _Exchange(self, cycle, self._channel(loop))
        # Cancelled (the client went away), this waits for the thread: its next read or write
        # raises and the iterable is closed there before the request is ended.
        final = await self.executor.call(exchange.run)
        if final is not None and cycle.is_active:
            cycle.end(final)
