"""A small HTTP/1.1 front end for development (``smisk-serve app:App --http :8080``).

Rules: HTTP parsing is h11's (no hand-written parsing here). Each HTTP connection gets its own
FastCGI connection to the app's server in the same process, over a socketpair: each HTTP request
becomes one FastCGI request with nginx-like params. Bodies stream both ways with ``drain`` in
between; nothing buffers a whole body. Every client is bounded like a FastCGI peer: a request
head within ``ServerLimits.params_timeout``, a keep-alive wait within ``HTTPLimits.idle_timeout``,
at most ``HTTPLimits.max_connections`` connections (the request body is bounded by the FastCGI
server's own ``body_timeout`` and ``max_body_size``). Not meant for production: put nginx in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11

from smisk._version import __version__
from smisk.codec import encode_params
from smisk.protocol.records import RecordReader, encode_record, encode_stream
from smisk.server import Address, Listener, Server
from smisk.server.protocol import FastCGIProtocol

__all__ = ["DevHTTPFrontEnd", "HTTPLimits", "default_max_connections"]

log = logging.getLogger("smisk.http")

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
REQUEST_ID = 1  # one request at a time per connection, as nginx does
READ_SIZE = 64 * 1024  # bytes read per step from either socket
MAX_HEAD = 64 * 1024  # a CGI header block larger than this is a broken app (nginx: 4-8 KiB)
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"status"})
_BAD_GATEWAY = b"502 Bad Gateway: the application ended without a valid response\n"

DEFAULT_MAX_CONNECTIONS = 512  # nginx's worker_connections
DEFAULT_IDLE_TIMEOUT = 75.0  # nginx's keepalive_timeout; below the FastCGI side's 300 s
DEFAULT_SEND_TIMEOUT = 60.0  # nginx's send_timeout: a client that takes nothing for this long
# A connection holds three descriptors: the client's socket and both ends of the socketpair.
FDS_PER_CONNECTION = 3
# Descriptors left for everything else (listeners, logs, the application's own files) when the
# default connection limit is derived from RLIMIT_NOFILE.
RESERVED_FDS = 64
# Seconds accepting waits after running out of descriptors when none of our connections closes
# meanwhile (asyncio's own accept loop waits as long).
RETRY_DELAY = 1.0
# accept() and socketpair() errors that mean "no resources now, try again later".
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def default_max_connections(nofile: int | None = None) -> int:
    """``DEFAULT_MAX_CONNECTIONS``, or fewer when the descriptor limit ``nofile`` (default: this
    process's soft RLIMIT_NOFILE) cannot hold that many with ``RESERVED_FDS`` to spare."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(1, min(DEFAULT_MAX_CONNECTIONS, (nofile - RESERVED_FDS) // FDS_PER_CONNECTION))


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """What the development front end holds its HTTP clients to (per process).

    The request-head timeout is the FastCGI server's ``ServerLimits.params_timeout`` and the
    body limits are its ``body_timeout`` and ``max_body_size``: one setting bounds both sides.
    """

    # Open HTTP connections; at the limit accepting pauses (new clients wait in the backlog).
    max_connections: int = field(default_factory=default_max_connections)
    # Seconds a keep-alive connection may wait for its next request before it is closed.
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    # Seconds a client may take to accept more of a response (nginx's send_timeout): past it
    # the connection is dropped and the application's request aborted, instead of the response
    # waiting in memory for a reader that never comes.
    send_timeout: float = DEFAULT_SEND_TIMEOUT

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HTTPLimits:
        """Defaults overridden by ``SMISK_HTTP_MAX_CONNECTIONS`` (0: the default),
        ``SMISK_HTTP_IDLE_TIMEOUT`` and ``SMISK_HTTP_SEND_TIMEOUT`` (0: no limit), which
        ``--http-max-connections``, ``--http-idle-timeout`` and ``--http-send-timeout`` set.
        Raises ``ValueError`` naming a malformed variable."""
        env = os.environ if environ is None else environ
        limits = cls()
        connections = _non_negative(env, "SMISK_HTTP_MAX_CONNECTIONS", int)
        if connections:
            limits = replace(limits, max_connections=int(connections))
        idle = _non_negative(env, "SMISK_HTTP_IDLE_TIMEOUT", float)
        if idle is not None:
            limits = replace(limits, idle_timeout=idle)
        send = _non_negative(env, "SMISK_HTTP_SEND_TIMEOUT", float)
        if send is not None:
            limits = replace(limits, send_timeout=send)
        return limits


def _non_negative(env: Mapping[str, str], variable: str, kind: type[float]) -> float | None:
    text = env.get(variable, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{variable}={text!r} is not a non-negative number")
    return value


def _deadline(seconds: float) -> float | None:
    """A timeout for ``asyncio.timeout``: 0 turns the limit off, as for the FastCGI side."""
    return seconds if seconds > 0 else None


class BadGateway(Exception):
    """The application's FastCGI output could not be turned into an HTTP response."""


class ClientStalled(Exception):
    """The HTTP client took none of the response for ``HTTPLimits.send_timeout`` seconds."""


class DevHTTPFrontEnd:
    """Serves HTTP on listeners by forwarding to ``server`` over in-process FastCGI."""

    def __init__(self, server: Server, limits: HTTPLimits | None = None) -> None:
        self.server = server
        # Without an explicit value, SMISK_HTTP_* variables apply (set by smisk-serve options).
        self.limits = limits if limits is not None else HTTPLimits.from_environ()
        self.listeners: list[Listener] = []
        self._acceptors: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed_one = asyncio.Event()  # set whenever a connection ends: room to accept
        self._paused = False

    @property
    def addresses(self) -> list[Address]:
        """The HTTP addresses being served."""
        return [listener.bound_address for listener in self.listeners]

    async def start(self, listeners: list[Listener]) -> None:
        """Accept HTTP connections on ``listeners`` (closed again by ``close()``)."""
        loop = asyncio.get_running_loop()
        for listener in listeners:
            self.listeners.append(listener)
            self._acceptors.add(loop.create_task(self._accept_loop(listener)))

    async def close(self) -> None:
        """Stop accepting and drop open HTTP connections (the FastCGI side closes gracefully)."""
        for task in [*self._acceptors, *self._tasks]:
            task.cancel()
        for tasks in (self._acceptors, self._tasks):
            if tasks:
                await asyncio.wait(tasks)
        self._acceptors.clear()
        for listener in self.listeners:
            listener.close()

    # -- accepting ---------------------------------------------------------------------------

    async def _accept_loop(self, listener: Listener) -> None:
        """Accept while there is room; a pause leaves new clients queued in the listen backlog."""
        while True:
            await self._wait_for_room()
            try:
                client, pair = await _accept(listener.socket)
            except ConnectionAbortedError:
                continue  # the client left while it was queued
            except OSError as error:
                await self._accept_failed(error)
                continue
            self._resumed()
            task = asyncio.get_running_loop().create_task(self._serve(client, pair))
            self._tasks.add(task)
            task.add_done_callback(self._connection_done)

    async def _wait_for_room(self) -> None:
        while len(self._tasks) >= self.limits.max_connections:
            if not self._paused:
                self._paused = True
                log.warning(
                    "HTTP max_connections (%d) reached: accepting paused until a connection closes",
                    self.limits.max_connections,
                )
            self._closed_one.clear()
            await self._closed_one.wait()

    async def _accept_failed(self, error: OSError) -> None:
        """Out of descriptors (or another accept error): pause until a connection of ours
        closes, or ``RETRY_DELAY`` when the descriptors are held elsewhere."""
        if not self._paused:
            self._paused = True
            if error.errno in _OUT_OF_RESOURCES:
                log.warning(
                    "out of file descriptors (%s): accepting HTTP connections paused until one "
                    "closes (%d open)",
                    error.strerror,
                    len(self._tasks),
                )
            else:
                log.error("accepting an HTTP connection failed: %s; retrying", error)
        self._closed_one.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RETRY_DELAY):
                await self._closed_one.wait()

    def _resumed(self) -> None:
        if self._paused:
            self._paused = False
            log.info("accepting HTTP connections again (%d open)", len(self._tasks))

    def _connection_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._closed_one.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("HTTP connection failed", exc_info=task.exception())

    # -- one connection ----------------------------------------------------------------------

    async def _serve(
        self, client: socket.socket, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=client)
        except BaseException:
            client.close()
            for sock in pair:
                sock.close()
            raise
        try:
            app = await _connect_app(self.server, pair)
            await _HTTPConnection(self, reader, writer).run(*app)
        except ClientStalled as stalled:
            log.info("dropping HTTP connection: %s", stalled)
            _reset(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except h11.ProtocolError as error:
            log.info("dropping HTTP connection: %s", error)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop a connection whose client takes nothing: a reset, not a close. ``close()`` would
    wait for the buffered response, and a closed socket would still trickle its kernel buffer
    out to the stalled client; a zero linger discards both."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _accept(sock: socket.socket) -> tuple[socket.socket, tuple[socket.socket, socket.socket]]:
    """Accept one client with its socketpair to the app, taken first: running out of descriptors
    then leaves the client queued in the backlog instead of accepting and dropping it."""
    pair = socket.socketpair()
    try:
        client, _ = await asyncio.get_running_loop().sock_accept(sock)
    except BaseException:
        for end in pair:
            end.close()
        raise
    return client, pair


async def _connect_app(
    server: Server, pair: tuple[socket.socket, socket.socket]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Serve one end of ``pair`` as a FastCGI connection of ``server``; return streams on the
    other end."""
    ours, theirs = pair
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(
            lambda: FastCGIProtocol(server, trusted_peer=True), theirs
        )
    except BaseException:
        ours.close()
        theirs.close()
        raise
    try:
        return await asyncio.open_connection(sock=ours)
    except BaseException:
        ours.close()  # the server's side reads EOF and closes
        raise


class _HTTPConnection:
    """One HTTP client connection and its FastCGI connection to the app."""

    def __init__(
        self, front: DevHTTPFrontEnd, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = front.server
        self.head_timeout = _deadline(front.server.server_limits.params_timeout)
        self.idle_timeout = _deadline(front.limits.idle_timeout)
        self.send_timeout = _deadline(front.limits.send_timeout)
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.SERVER)
        self.peer = writer.get_extra_info("peername") or ("", 0)
        self.local = writer.get_extra_info("sockname") or ("", 0)

    async def run(
        self, fcgi_reader: asyncio.StreamReader, fcgi_writer: asyncio.StreamWriter
    ) -> None:
        try:
            request = await self._next_request(first=True)
            while request is not None:
                await self._exchange(request, fcgi_reader, fcgi_writer)
                if self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
                    return
                self.http.start_next_cycle()
                request = await self._next_request(first=False)
        finally:
            fcgi_writer.close()

    async def _next_request(self, first: bool) -> h11.Request | None:
        """The next request head, or None when the connection is to close (the client left,
        stayed idle, was too slow or sent something unusable: answered 408 or 400)."""
        if not first and not self.http.trailing_data[0] and not await self._wait_idle():
            return None
        try:
            async with asyncio.timeout(self.head_timeout):
                event = await self._next_event()
        except TimeoutError:
            if self.http.trailing_data[0]:  # a head was begun: say why it is cut off
                self._refuse(408, "the request head did not arrive in time (params_timeout)")
            return None
        except h11.RemoteProtocolError as error:
            if not self.http.trailing_data[1]:  # a client that left mid-head hears nothing
                self._refuse(error.error_status_hint, str(error))
            return None
        if not isinstance(event, h11.Request):
            return None
        if _ambiguous_framing(event):
            # RFC 9112 6.1: a request framed both ways may be read differently by a proxy in
            # front of us; serving it and keeping the connection would let a second request
            # hide in its body.
            self._refuse(400, "both Content-Length and Transfer-Encoding")
            return None
        return event

    async def _wait_idle(self) -> bool:
        """Wait for the first bytes of the next request on a kept-alive connection; False when
        ``idle_timeout`` passes first (the connection closes quietly, as nginx does)."""
        try:
            async with asyncio.timeout(self.idle_timeout):
                data = await self.reader.read(READ_SIZE)
        except TimeoutError:
            return False
        self.http.receive_data(data)
        return True

    async def drain(self) -> None:
        """Wait until the client has taken enough of the response; ``ClientStalled`` when it
        takes nothing for ``send_timeout`` seconds."""
        try:
            async with asyncio.timeout(self.send_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise ClientStalled(
                f"the client read nothing for {self.send_timeout:g} s (send_timeout)"
            ) from None

    async def _next_event(self) -> Any:
        while True:
            event = self.http.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.http.receive_data(await self.reader.read(READ_SIZE))

    async def _exchange(
        self, request: h11.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(encode_record(BEGIN_REQUEST, REQUEST_ID, b"\x00\x01\x01" + bytes(5)))
        params = encode_params(self._params(request))
        writer.write(encode_stream(PARAMS, REQUEST_ID, params) + encode_record(PARAMS, REQUEST_ID))
        if self.http.they_are_waiting_for_100_continue:
            self.writer.write(
                self.http.send(
                    h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                )
            )
        body = asyncio.create_task(self._pump_body(writer))
        try:
            await _ResponseRelay(self, request.method).run(reader)
        except BadGateway as error:
            log.warning("bad gateway: %s", error)
            self._send_error(502, _BAD_GATEWAY)
        finally:
            if not body.done():
                body.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await body

    async def _pump_body(self, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    writer.write(encode_stream(STDIN, REQUEST_ID, bytes(event.data)))
                    await writer.drain()
                elif isinstance(event, h11.EndOfMessage):
                    writer.write(encode_record(STDIN, REQUEST_ID))
                    await writer.drain()
                    return
                else:
                    break
        except (ConnectionError, h11.ProtocolError):
            pass
        writer.write(encode_record(ABORT_REQUEST, REQUEST_ID))  # the client went away

    def _params(self, request: h11.Request) -> list[tuple[bytes, bytes]]:
        target = bytes(request.target)
        path, _, query = target.partition(b"?")
        host = self.local[0].encode()
        params = [
            (b"GATEWAY_INTERFACE", b"CGI/1.1"),
            (b"SERVER_SOFTWARE", f"smisk-devhttp/{__version__}".encode()),
            (b"SERVER_PROTOCOL", b"HTTP/" + bytes(request.http_version)),
            (b"REQUEST_METHOD", bytes(request.method)),
            (b"REQUEST_URI", target),
            (b"DOCUMENT_URI", path),
            (b"SCRIPT_NAME", unquote(path.decode("latin-1"), "latin-1").encode("latin-1")),
            (b"QUERY_STRING", query),
            (b"REQUEST_SCHEME", b"http"),
            (b"SERVER_NAME", host),
            (b"SERVER_ADDR", host),
            (b"SERVER_PORT", str(self.local[1]).encode()),
            (b"REMOTE_ADDR", str(self.peer[0]).encode()),
            (b"REMOTE_PORT", str(self.peer[1]).encode()),
        ]
        for name, value in request.headers:
            if b"_" in name:
                # "Content_Length" and "Content-Length" would both become CONTENT_LENGTH, and
                # "X_Forwarded_For" would pass for X-Forwarded-For: nginx drops such names too.
                log.info("ignoring the header %r: '_' in a name is read as '-'", bytes(name))
                continue
            params.append((_param_name(bytes(name)), bytes(value)))
        return [pair for pair in params if pair[0] != b"HTTP_PROXY"]  # httpoxy

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a request that cannot be served with ``status`` and close the connection."""
        log.info("refusing an HTTP request from %s: %s (%d)", self.peer[0], reason, status)
        if self.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            phrase = HTTPStatus(status).phrase
            self._send_error(status, f"{status} {phrase}: {reason}\n".encode(), close=True)

    def _send_error(self, status: int, body: bytes, *, close: bool = False) -> None:
        if self.http.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            raise ConnectionError("the response failed after it had begun")
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        reason = HTTPStatus(status).phrase.encode()
        response = h11.Response(status_code=status, headers=headers, reason=reason)
        self.writer.write(self.http.send(response))
        self.writer.write(self.http.send(h11.Data(data=body)))
        self.writer.write(self.http.send(h11.EndOfMessage()))


def _ambiguous_framing(request: h11.Request) -> bool:
    names = {bytes(name) for name, _ in request.headers}  # h11 lower-cases header names
    return b"content-length" in names and b"transfer-encoding" in names


def _param_name(header: bytes) -> bytes:
    name = header.upper().replace(b"-", b"_")
    if name in (b"CONTENT_TYPE", b"CONTENT_LENGTH"):
        return name
    return b"HTTP_" + name


class _ResponseRelay:
    """Turns the app's STDOUT (a CGI header block, then the body) into an h11 response."""

    def __init__(self, connection: _HTTPConnection, method: bytes) -> None:
        self.connection = connection
        self.http = connection.http
        self.writer = connection.writer
        self.bodyless = method == b"HEAD"
        self.head = bytearray()
        self.began = False

    async def run(self, reader: asyncio.StreamReader) -> None:
        records = RecordReader()
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                raise BadGateway("the application closed the connection")
            for record_type, _, piece in records.feed(data):
                content = bytes(piece)  # replies are STDOUT/STDERR: already bytes, not copied
                if record_type == STDOUT and content:
                    await self._stdout(content)
                elif record_type == STDERR and content:
                    log.warning("app stderr: %s", content.decode("utf-8", "replace").rstrip())
                elif record_type == END_REQUEST:
                    self._finish()
                    return

    async def _stdout(self, content: bytes) -> None:
        if self.began:
            await self._body(content)
            return
        self.head += content
        end, skip = _head_end(self.head)
        if end < 0:
            if len(self.head) > MAX_HEAD:
                raise BadGateway("the response header block is too large")
            return
        head, rest = bytes(self.head[:end]), bytes(self.head[end + skip :])
        self.writer.write(self.http.send(_parse_head(head)))
        self.began = True
        if rest:
            await self._body(rest)

    async def _body(self, data: bytes) -> None:
        if self.bodyless or self.http.our_state is not h11.SEND_BODY:
            return
        self.writer.write(self.http.send(h11.Data(data=data)))
        await self.connection.drain()

    def _finish(self) -> None:
        if not self.began:
            raise BadGateway("the response ended inside its header block")
        self.writer.write(self.http.send(h11.EndOfMessage()))


def _head_end(head: bytearray) -> tuple[int, int]:
    crlf, lf = head.find(b"\r\n\r\n"), head.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return lf, 2 if lf >= 0 else 0


def _parse_head(head: bytes) -> h11.Response:
    status: int | None = None
    reason = b""
    headers: list[tuple[bytes, bytes]] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            raise BadGateway(f"invalid header line {line[:80]!r}")
        name, value = name.strip(), value.strip()
        if name.lower() == b"status":
            code, _, reason = value.partition(b" ")
            if not code.isdigit():
                raise BadGateway(f"invalid status {value[:40]!r}")
            status = int(code)
        elif name.lower() not in HOP_BY_HOP:
            headers.append((name, value))
    if status is None:  # CGI: a Location without a Status is a redirect
        status = 302 if any(name.lower() == b"location" for name, _ in headers) else 200
    if not reason:
        with contextlib.suppress(ValueError):
            reason = HTTPStatus(status).phrase.encode()
    try:
        return h11.Response(status_code=status, headers=headers, reason=reason)
    except h11.LocalProtocolError as error:
        raise BadGateway(str(error)) from None
