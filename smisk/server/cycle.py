"""RequestCycle: one FastCGI request from its params to END_REQUEST.

Rules: runs on the event loop only. The connection routes events here; the handler reads input
and writes output through this object. Every write ends in ``FastCGIProtocol.send`` and waits for
``drain`` while the transport is paused, so a slow client never makes the server buffer much.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from smisk.protocol import Role
from smisk.server.streams import BodyStream, ClientGone

if TYPE_CHECKING:
    from smisk.server.protocol import FastCGIProtocol

__all__ = ["Handler", "RequestCycle"]

log = logging.getLogger("smisk.server")

Handler = Callable[["RequestCycle"], Awaitable[None]]

# A single write larger than this is sent in slices with a drain between them, so one huge
# write() cannot park more than about this much in the transport's buffer. The slices are views
# of the caller's data: they add no memory and no copy.
WRITE_SLICE = 256 * 1024
# Bytes a handler thread may hand to the loop without waiting for them to be taken (``post``):
# what a unix-socket connection's send buffer holds (Linux doubles the 1 MiB SO_SNDBUF smisk
# asks for), so a response of that size costs the thread no round trip. Above it, or while the
# transport is paused for a slow client, the thread waits.
THREAD_WRITE_WINDOW = 2 * 1024 * 1024

_FILTER = Role.FILTER  # bound once: an enum member read off its class costs ~80 ns per request

_FALLBACK_500 = (
    b"Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Internal Server Error\n"
)


class RequestCycle:
    """One request on one connection: its params, input streams and output."""

    __slots__ = (
        "aborted",
        "body",
        "body_size",
        "data",
        "ended",
        "keep_conn",
        "last_input",
        "on_abort",
        "output_started",
        "params",
        "posted",
        "protocol",
        "request_id",
        "role",
        "taken",
        "task",
    )

    def __init__(
        self,
        protocol: FastCGIProtocol,
        request_id: int,
        role: Role,
        keep_conn: bool,
        params: list[tuple[bytes, bytes]],
    ) -> None:
        self.protocol = protocol
        self.request_id = request_id
        self.role = role
        self.keep_conn = keep_conn
        self.params = params
        self.body = BodyStream(protocol.input_consumed)
        self.data: BodyStream | None = (
            BodyStream(protocol.input_consumed) if role is _FILTER else None
        )
        self.output_started = False
        self.body_size = 0  # request body bytes received so far (max_body_size)
        self.last_input = 0.0  # loop time of the last input (body_timeout); set by the protocol
        self.ended = False
        self.aborted = False
        self.task: asyncio.Task[None] | None = None
        # Called instead of cancelling the task on abort/disconnect, for handlers that tell
        # their application first (ASGI's http.disconnect) and cancel later themselves.
        self.on_abort: Callable[[], None] | None = None
        # Bytes posted by the handler thread and taken by the loop: each counter has one
        # writer, so their difference needs no lock.
        self.posted = 0
        self.taken = 0

    @property
    def is_active(self) -> bool:
        """True while output can still reach the peer."""
        return not self.ended and not self.aborted and not self.protocol.is_closed

    def params_dict(self) -> dict[str, str]:
        """The params decoded as latin-1 text (later duplicates win)."""
        return {name.decode("latin-1"): value.decode("latin-1") for name, value in self.params}

    # -- output ------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.ended:
            raise ClientGone("the request has already ended")
        if self.aborted or self.protocol.is_closed:
            raise ClientGone("the client went away")

    def _start_output(self, data: bytes) -> None:
        if not self.output_started:
            self.output_started = True
            _check_header_block(data, self.protocol.server.server_limits.header_warn_size)

    async def write(self, data: bytes) -> None:
        """Send ``data`` as STDOUT; waits while the transport is paused."""
        self._check_writable()
        self._start_output(data)
        if len(data) <= WRITE_SLICE:
            self.protocol.send_stdout(self.request_id, data)
            await self.protocol.drain()
            return
        view = memoryview(data)
        for start in range(0, len(data), WRITE_SLICE):
            self._check_writable()
            self.protocol.send_stdout(self.request_id, view[start : start + WRITE_SLICE])
            await self.protocol.drain()

    def post(self, data: bytes) -> bool:
        """From a handler thread: hand ``data`` to the loop without waiting, while the client
        keeps up (transport not paused, under ``THREAD_WRITE_WINDOW`` bytes handed over and not
        yet taken). False when the thread must wait instead (``write``). Raises ClientGone
        once the request can take no more output."""
        self._check_writable()
        size = len(data)
        if self.protocol.writing_paused or self.posted - self.taken + size > THREAD_WRITE_WINDOW:
            return False
        self.posted += size
        self.protocol.loop.call_soon_threadsafe(self._take_posted, data)
        return True

    def after_posted_output(self, callback: Callable[..., None], *args: object) -> None:
        """On the loop: run ``callback(*args)`` once every output a handler thread posted
        (``post``) was taken. A thread's outcome can arrive ahead of its last posts (uvloop
        runs I/O callbacks before queued ones); queued behind them, what it ends follows them."""
        if self.posted != self.taken:
            self.protocol.loop.call_soon(self.after_posted_output, callback, *args)
        else:
            callback(*args)

    def _take_posted(self, data: bytes) -> None:
        self.taken += len(data)
        if self.is_active:  # else the thread's next write raises ClientGone
            self.write_nowait(data)

    def write_nowait(self, data: bytes) -> None:
        """Queue ``data`` as STDOUT without waiting for the transport (small writes only)."""
        self._check_writable()
        self._start_output(data)
        self.protocol.send_stdout(self.request_id, data)

    async def write_stderr(self, data: bytes) -> None:
        """Send ``data`` as STDERR (the front end logs it)."""
        self._check_writable()
        self.protocol.send_stderr(self.request_id, data)
        await self.protocol.drain()

    def end(self, data: bytes = b"", app_status: int = 0) -> None:
        """Send any final ``data``, then END_REQUEST. Safe to call twice or after a disconnect."""
        if self.ended:
            return
        self.ended = True
        self.body.discard()
        if self.data is not None:
            self.data.discard()
        if data:
            self._start_output(data)
        self.protocol.end_request(self.request_id, data, app_status)

    def break_off(self, reason: str) -> None:
        """End a request whose output cannot be completed as its head announced (say a file
        that shrank while sent). FastCGI has no record that fails one request and END_REQUEST
        would pass the short body as whole, so the connection is dropped without it: the front
        end sees a truncated response. Other requests on the connection end with it."""
        if self.ended:
            return
        log.error("request %d broken off: %s", self.request_id, reason)
        self.ended = True
        self.body.discard()
        if self.data is not None:
            self.data.discard()
        self.protocol.abort()

    # -- events from the connection ----------------------------------------------------------

    def abort(self, error: ClientGone) -> None:
        """The peer aborted the request or the connection closed: wake readers, cancel the task."""
        if self.aborted or self.ended:
            return
        self.aborted = True
        self.body.fail(error)
        if self.data is not None:
            self.data.fail(error)
        if self.on_abort is not None:
            self.on_abort()
        elif self.task is not None and not self.task.done():
            self.task.cancel()

    async def run(self, handler: Handler) -> None:
        """Run ``handler`` for this request, then make sure the request is ended."""
        try:
            await handler(self)
        except asyncio.CancelledError:
            if not self.aborted:
                raise
        except ClientGone:
            pass
        except Exception as error:
            self._handler_failed(error)
        finally:
            self.end()

    def finish(self, error: BaseException | None = None) -> None:
        """End a request whose handler ran without a task, as ``run`` ends one: ``error`` is
        what the handler raised (None: it returned). A failure gets the fallback 500 while no
        output was sent; SystemExit and KeyboardInterrupt are raised again, after the end."""
        if isinstance(error, Exception) and not isinstance(error, ClientGone):
            self._handler_failed(error)
        self.end()
        if error is not None and not isinstance(error, (Exception, asyncio.CancelledError)):
            raise error

    def _handler_failed(self, error: Exception) -> None:
        log.error("unhandled error in request handler", exc_info=error)
        if not self.output_started and self.is_active:
            self.end(_FALLBACK_500)

    def refuse(self, status: int, reason: str) -> None:
        """Answer with a short plain-text error page and end the request."""
        self.end(error_page(status, reason))

    def stop(self, status: int, reason: str) -> None:
        """End the request now (with an error page if no output was sent yet) and stop its
        handler: a limit or timeout hit while the handler runs."""
        page = b"" if self.output_started else error_page(status, reason)
        self.abort(ClientGone(reason))
        self.end(page)


def error_page(status: int, reason: str) -> bytes:
    """A short plain-text error response (``reason`` is ours, never client text)."""
    body = f"{reason}\n".encode()
    retry = "Retry-After: 1\r\n" if status == 503 else ""
    head = (
        f"Status: {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{retry}\r\n"
    )
    return head.encode("latin-1") + body


def _check_header_block(data: bytes, limit: int) -> None:
    """Log a response whose header block is larger than ``limit`` (nginx answers 502)."""
    if len(data) <= limit:
        return
    end = data.find(b"\r\n\r\n", 0, limit + 4)
    if end < 0:
        size = data.find(b"\r\n\r\n")
        log.warning(
            "response header block of %s bytes exceeds %d (nginx's default "
            "fastcgi_buffer_size): the web server may answer 502",
            size if size >= 0 else f"more than {len(data)}",
            limit,
        )
