"""A small HTTP/1.1 front end for development (``smisk-serve app:App --http :8080``).

Rules: HTTP parsing is h11's (no hand-written parsing here). Each HTTP connection gets its own
FastCGI connection to the app's server in the same process, over a socketpair: each HTTP request
becomes one FastCGI request with nginx-like params. Bodies stream both ways with ``drain`` in
between; nothing buffers a whole body. Not meant for production traffic: put nginx in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11

from smisk._version import __version__
from smisk.codec import encode_params
from smisk.protocol.records import RecordReader, encode_record, encode_stream
from smisk.server import Address, Listener, Server
from smisk.server.protocol import FastCGIProtocol

__all__ = ["DevHTTPFrontEnd"]

log = logging.getLogger("smisk.http")

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
REQUEST_ID = 1  # one request at a time per connection, as nginx does
READ_SIZE = 64 * 1024  # bytes read per step from either socket
MAX_HEAD = 64 * 1024  # a CGI header block larger than this is a broken app (nginx: 4-8 KiB)
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"status"})
_BAD_GATEWAY = b"502 Bad Gateway: the application ended without a valid response\n"


class BadGateway(Exception):
    """The application's FastCGI output could not be turned into an HTTP response."""


class DevHTTPFrontEnd:
    """Serves HTTP on listeners by forwarding to ``server`` over in-process FastCGI."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.listeners: list[Listener] = []
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def addresses(self) -> list[Address]:
        """The HTTP addresses being served."""
        return [listener.bound_address for listener in self.listeners]

    async def start(self, listeners: list[Listener]) -> None:
        """Accept HTTP connections on ``listeners`` (closed again by ``close()``)."""
        for listener in listeners:
            server = await asyncio.start_server(self._accepted, sock=listener.socket)
            self.listeners.append(listener)
            self._servers.append(server)

    async def close(self) -> None:
        """Stop accepting and drop open HTTP connections (the FastCGI side closes gracefully)."""
        for server in self._servers:
            server.close()
        for listener in self.listeners:
            listener.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await _HTTPConnection(self.server, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except h11.ProtocolError as error:
            log.info("dropping HTTP connection: %s", error)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _HTTPConnection:
    """One HTTP client connection and its FastCGI connection to the app."""

    def __init__(
        self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.SERVER)
        self.peer = writer.get_extra_info("peername") or ("", 0)
        self.local = writer.get_extra_info("sockname") or ("", 0)

    async def run(self) -> None:
        fcgi_reader, fcgi_writer = await self._connect_app()
        try:
            while True:
                event = await self._next_event()
                if not isinstance(event, h11.Request):
                    return
                await self._exchange(event, fcgi_reader, fcgi_writer)
                if self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
                    return
                self.http.start_next_cycle()
        finally:
            fcgi_writer.close()

    async def _connect_app(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: FastCGIProtocol(self.server), theirs)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        return await asyncio.open_connection(sock=ours)

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
                self.http.send(h11.InformationalResponse(status_code=100, headers=[]))
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
            params.append((_param_name(bytes(name)), bytes(value)))
        return [pair for pair in params if pair[0] != b"HTTP_PROXY"]  # httpoxy

    def _send_error(self, status: int, body: bytes) -> None:
        if self.http.our_state is not h11.SEND_RESPONSE:
            raise ConnectionError("the response failed after it had begun")
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        self.writer.write(self.http.send(h11.Response(status_code=status, headers=headers)))
        self.writer.write(self.http.send(h11.Data(data=body)))
        self.writer.write(self.http.send(h11.EndOfMessage()))


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
        await self.writer.drain()

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
