"""PEP 3333: runs a WSGI application as a handler for ``smisk.server.Server``.

Rules: the application runs in a bounded thread pool inside a copy of the loop's context (the
request's task's, when a server wrapper gives it one); the thread never touches the transport.
A request needs no task: its thread's outcome ends it on the loop, after all the output the
thread posted. Input is read from the loop in chunks; output is collected in the thread and
handed to the loop in batches: a small response costs one hand-off (the thread's result), a
streamed one is sent block by block without waiting, with a
blocking, draining write at least every ``STREAM_WINDOW`` bytes (backpressure). Files from
``wsgi.file_wrapper`` are read in the thread and sent in large chunks. Every status and header
is checked on every response (``smisk.core.headers`` decides what may go on the wire); a check
that passed is remembered for the few values an application repeats, one that failed never is.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from smisk.codec import params_latin1
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
# Distinct statuses and header (name, value) pairs whose check is remembered: applications send
# the same few with every response. Values that change per response only cycle through it;
# long values and Set-Cookie are never kept (memory, and cookies carry secrets), as in the
# classic Response's cache of header lines.
HEADER_CACHE = 256
CACHED_VALUE_LIMIT = 1024  # characters: the cache holds at most ~256 KiB of header text

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
# CGI variables PEP 3333 requires, for a front end that sent none
_CGI_DEFAULTS = (
    ("REQUEST_METHOD", "GET"),
    ("QUERY_STRING", ""),
    ("SERVER_PORT", "80"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
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
    return _cgi_environ(params, mount_prefix(script_name), trusted)


def _cgi_environ(
    params: Iterable[tuple[bytes, bytes]], mount: bytes, trusted: TrustedProxies
) -> dict[str, Any]:
    """``build_environ`` with the mount prefix already as ``mount_prefix`` gives it."""
    env = merge_params(params if isinstance(params, list) else list(params))
    environ = params_latin1(env.items())
    environ.pop("HTTP_CONTENT_TYPE", None)
    environ.pop("HTTP_CONTENT_LENGTH", None)
    script, path_info, _raw = split_path(env, mount)
    environ["SCRIPT_NAME"] = script.decode("latin-1")
    environ["PATH_INFO"] = path_info.decode("latin-1")
    _set_host(environ, env, trusted)
    for name, default in _CGI_DEFAULTS:
        environ.setdefault(name, default)
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if not environ.get(name):
            environ.pop(name, None)
    environ["wsgi.url_scheme"] = url_scheme(env, trusted)
    if trusted:  # only a trusted proxy can name a client other than REMOTE_ADDR
        host, port = client_address(env, trusted)
        if host != env.get(b"REMOTE_ADDR", b""):
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
    if not environ.get("SERVER_NAME"):  # a SERVER_NAME that was sent is already there
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


def _check_response(status: str, headers: list[tuple[str, str]]) -> tuple[int | None, bytes]:
    """Validate ``start_response`` arguments: the Content-Length if there is one, and the
    response head (``Status:`` line, header lines, blank line) as it goes on the wire."""
    lines = [(_cached_status_line if type(status) is str else _status_line)(status)]
    length = None
    for name, value in headers:
        if type(name) is str and type(value) is str and _may_cache(name, value):
            line, declared = _cached_header_line(name, value)
        else:
            line, declared = _header_line(name, value)
        lines.append(line)
        if declared is not None:
            length = declared
    lines.append(b"\r\n")
    return length, b"".join(lines)


def _status_line(status: str) -> bytes:
    """The ``Status:`` line of a PEP 3333 status (``"200 OK"``); ValueError for anything else."""
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise ValueError(f"invalid WSGI status {status!r}")
    check_status(int(status[:3]))
    try:
        return f"Status: {status}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"WSGI status is not latin-1 (PEP 3333): {status!r}") from None


def _header_line(name: str, value: str) -> tuple[bytes, int | None]:
    """One header as its wire line, and the length it declares if it is a Content-Length.

    ``smisk.core.headers.check_header`` decides what is safe; PEP 3333 adds that both are
    ``str``, the value latin-1, and that hop-by-hop headers belong to the server.
    """
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"WSGI header names and values must be str: {name!r}: {value!r}")
    check_header(name, value)
    try:
        line = f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"WSGI header {name} is not latin-1 (PEP 3333): {value!r}") from None
    lowered = name.lower()
    if lowered in _HOP_BY_HOP:
        raise ValueError(f"hop-by-hop header {name} is not allowed in a WSGI response")
    declared = int(value) if lowered == "content-length" and value.strip().isdigit() else None
    return line, declared


def _may_cache(name: str, value: str) -> bool:
    """Whether a checked header may be remembered: not a long value, not a cookie."""
    return len(value) <= CACHED_VALUE_LIMIT and not (
        len(name) == 10 and name.lower() == "set-cookie"
    )


# Exact ``str`` arguments only (a subclass could compare equal to a checked value and differ);
# an exception is never cached, so a refused status or header raises every time.
_cached_status_line = functools.lru_cache(maxsize=HEADER_CACHE)(_status_line)
_cached_header_line = functools.lru_cache(maxsize=HEADER_CACHE)(_header_line)


def _wsgi_keys(multiprocess: bool) -> dict[str, Any]:
    """The ``wsgi.*`` environ keys that are the same for every request of a handler."""
    return {
        "wsgi.version": (1, 0),
        "wsgi.input_terminated": True,  # the input ends at the end of the body
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }


class _Exchange:
    """One request's run in a handler thread: environ, start_response, output."""

    # The per-request state starts as these class values: an instance stores what changes only.
    status: str | None = None
    head = b""  # the checked response head, sent with the first output
    length: int | None = None  # Content-Length the application declared
    sent = 0  # body bytes accepted so far
    head_sent = False  # the head left the thread: start_response can no longer replace it
    pending_size = 0
    unconfirmed = 0  # bytes handed to the loop without waiting for them to drain

    def __init__(self, handler: WSGIHandler, cycle: RequestCycle, channel: Channel) -> None:
        self.handler, self.cycle, self.channel = handler, cycle, channel
        self.pending: list[bytes] = []

    # -- the application side ----------------------------------------------------------------

    def environ(self) -> dict[str, Any]:
        handler, cycle = self.handler, self.cycle
        environ = _cgi_environ(cycle.params, handler.mount, handler.proxies)
        environ.update(handler.wsgi_keys)
        environ["wsgi.input"] = Stream(self.channel, source=cycle.body)
        environ["wsgi.errors"] = _ErrorStream()
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
        self.length, self.head = _check_response(status, headers)
        self.status = status
        if self.sent:  # a replaced response (exc_info) drops what the first one began
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
        if self.head_sent:
            data = b"".join(self.pending)
        else:  # the head and the body in one join (one copy)
            self.pending.insert(0, self.head)
            data = b"".join(self.pending)
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
        # Posted output is counted by the cycle: a request served without a task ends only
        # after the loop took it (``RequestCycle.after_posted_output``).
        if wait or self.unconfirmed > STREAM_WINDOW or not self.cycle.post(data):
            self.unconfirmed = 0
            self.channel.block(self.cycle.write, data)

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
        self.mount = mount_prefix(script_name)  # script_name and multiprocess are read here once
        self.wsgi_keys = _wsgi_keys(multiprocess)
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

    def serve_direct(self, cycle: RequestCycle) -> None:
        """Serve ``cycle`` without a task (``Server.start_cycle``): a handler thread runs the
        application in a copy of the loop's context, and its outcome ends the request on the
        loop. The server's wrappers that need a task (timeouts, access log) call the handler."""
        loop = cycle.protocol.loop
        exchange = _Exchange(self, cycle, self._channel(loop))
        done = functools.partial(cycle.after_posted_output, self._direct_done, cycle)
        try:
            self.executor.submit(loop, done, contextvars.copy_context().run, exchange.run)
        except RuntimeError as error:  # the threads are shut down: a 500, as in a task
            cycle.protocol.server.finish_cycle(cycle, error)

    def _direct_done(
        self, cycle: RequestCycle, final: bytes | None, error: BaseException | None
    ) -> None:
        """On the loop, once the thread returned and its posted output was taken."""
        if error is None and final is not None and cycle.is_active:
            cycle.end(final)
        cycle.protocol.server.finish_cycle(cycle, error)

    async def __call__(self, cycle: RequestCycle) -> None:
        loop = asyncio.get_running_loop()
        exchange = _Exchange(self, cycle, self._channel(loop))
        # Cancelled (the client went away), this waits for the thread: its next read or write
        # raises and the iterable is closed there before the request is ended.
        final = await self.executor.call(exchange.run)
        if final is not None and cycle.is_active:
            cycle.end(final)
