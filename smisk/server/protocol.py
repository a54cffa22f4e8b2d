"""FastCGIProtocol: the asyncio shell around one FastCGI connection.

Rules: the only code that reads or writes a connection's socket. It feeds bytes to the sans-IO
``FastCGIConnection``, routes events by request id to ``RequestCycle`` objects, and applies flow
control both ways: reading pauses while request bodies wait unread above a high-water mark, and
writers wait for ``drain`` while the transport is paused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, cast

from smisk.protocol import (
    Data,
    DataEnd,
    FastCGIConnection,
    RecordType,
    RemoteProtocolError,
    RequestAborted,
    RequestReceived,
    RequestRefused,
    Role,
    Stdin,
    StdinEnd,
)
from smisk.protocol.records import ZERO_COPY_THRESHOLD, Content, encode_record
from smisk.server.cycle import RequestCycle
from smisk.server.streams import BodyStream, ClientGone

if TYPE_CHECKING:
    from smisk.server.limits import ServerLimits
    from smisk.server.runner import Server

__all__ = ["FastCGIProtocol"]

log = logging.getLogger("smisk.server")

# Unread request-body bytes held per connection before reading pauses, and the level at which
# it resumes: enough to keep a fast upload streaming, small enough to bound memory per peer.
INPUT_HIGH_WATER = 512 * 1024
INPUT_LOW_WATER = 128 * 1024
# The transport's own write buffer: writers wait once this much is queued for a slow reader.
OUTPUT_HIGH_WATER = 256 * 1024
OUTPUT_LOW_WATER = 64 * 1024
# After its last response the server half-closes and discards input until the peer closes: a
# peer may still be sending a body nobody read, and closing with unread input makes the kernel
# reset the connection, which can destroy the response in flight. A peer that never closes its
# side is cut off after this many seconds.
LINGER_TIMEOUT = 5.0
# Sent right after the last END_REQUEST on a keep-alive connection that closes next (draining):
# nginx pools a connection only when END_REQUEST is the last thing it read, so this empty
# management record makes it drop the connection instead of sending a request into our close.
POOL_OPT_OUT = encode_record(RecordType.GET_VALUES_RESULT, 0)


class FastCGIProtocol(asyncio.Protocol):
    """One accepted connection."""

    def __init__(self, server: Server, *, trusted_peer: bool = False) -> None:
        self.server = server
        # The peer is this process (the --http front end's socket pair): allow_from does not apply.
        self.trusted_peer = trusted_peer
        self.connection = FastCGIConnection(server.limits, max_conns=server.max_connections)
        self.transport: asyncio.Transport | None = None
        self.cycles: dict[int, RequestCycle] = {}
        self.is_closed = False
        self.closing = False
        self.last_activity = 0.0
        self.loop = asyncio.get_running_loop()
        self._input_buffered = 0
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._linger_timer: asyncio.TimerHandle | None = None
        # Request ids seen waiting for the end of their params, with the sweep time that first
        # saw them (params_timeout).
        self._params_pending: dict[int, float] = {}
        self._inputs_open = 0  # requests whose input streams the peer has not finished
        self._send_buffer_sized = False  # ServerLimits.send_buffer: set with the first large write

    # -- connection lifecycle ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport's interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(OUTPUT_HIGH_WATER, OUTPUT_LOW_WATER)
        self.last_activity = self.loop.time()
        self.server.connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        gone = ClientGone("the connection closed")
        for cycle in list(self.cycles.values()):
            cycle.abort(gone)
        self._wake_drain_waiters(gone)
        self.server.connection_lost(self)

    def close(self) -> None:
        """Close now if no request is in flight, else once the last one ends."""
        self.closing = True
        if not self.cycles and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (used after the graceful deadline)."""
        if self.transport is not None:
            self.transport.abort()

    def check_timeouts(self, now: float, limits: ServerLimits) -> bool:
        """Called by the server's periodic sweep: close the connection (True) when a request's
        params or body stalled longer than ``limits`` allow; its requests get 408."""
        reason = self._stalled(now, limits)
        if reason is None:
            return False
        log.warning("closing connection: %s", reason)
        for cycle in list(self.cycles.values()):
            cycle.stop(408, "Request Timeout")
        if self.transport is not None:
            self.transport.close()
        return True

    def _stalled(self, now: float, limits: ServerLimits) -> str | None:
        pending = self.connection.active_requests.difference(self.cycles)
        for request_id in list(self._params_pending):
            if request_id not in pending:
                del self._params_pending[request_id]
        for request_id in pending:
            since = self._params_pending.setdefault(request_id, now)
            if 0 < limits.params_timeout < now - since:
                return f"request {request_id}: params incomplete after {limits.params_timeout} s"
        if self._reading_paused or limits.body_timeout <= 0:
            return None  # a slow handler, not a slow peer
        for cycle in self.cycles.values():
            if not cycle.body.eof_received and now - cycle.last_input > limits.body_timeout:
                return f"request {cycle.request_id}: no body for {limits.body_timeout} s"
        return None

    # -- input -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        if self._linger_timer is not None:
            return  # the last response is sent; what the peer still sends is not wanted
        try:
            events = self.connection.receive_data(data)
        except RemoteProtocolError as error:
            log.warning("closing connection: %s", error)
            self._flush()
            assert self.transport is not None
            self.transport.abort()
            return
        for event in events:
            self._dispatch(event)
        self._flush()
        self._close_if_done()

    def _dispatch(self, event: object) -> None:
        # A request a limit ended earlier in the same read has no cycle: its input is dropped.
        if type(event) is Stdin:
            cycle = self.cycles.get(event.request_id)
            if cycle is not None:
                self._stdin(cycle, event.data)
        elif type(event) is RequestReceived:
            self._inputs_open += 1
            self._start(event)
        elif type(event) is StdinEnd:
            cycle = self.cycles.get(event.request_id)
            if cycle is not None:
                cycle.body.feed_eof()
            if cycle is None or cycle.data is None:
                self._inputs_open -= 1
        elif type(event) is Data:
            cycle = self.cycles.get(event.request_id)
            if cycle is not None:
                self._feed(cycle.data, event.data)
        elif type(event) is DataEnd:
            cycle = self.cycles.get(event.request_id)
            if cycle is not None:
                assert cycle.data is not None
                cycle.data.feed_eof()
            self._inputs_open -= 1
        elif type(event) is RequestAborted:
            self._abort_request(event.request_id)
        elif type(event) is RequestRefused:
            self._refuse(event)

    def _start(self, event: RequestReceived) -> None:
        cycle = RequestCycle(self, event.request_id, event.role, event.keep_conn, event.params)
        cycle.last_input = self.last_activity
        self.cycles[event.request_id] = cycle
        self._params_pending.pop(event.request_id, None)
        refusal = self._refusal_for(event.params)
        if refusal is None:
            self.server.start_cycle(cycle)
            return
        status, reason = refusal
        log.warning("refused request %d: %s", event.request_id, reason)
        self.server.stats.requests_refused += 1
        cycle.refuse(status, reason)

    def _refusal_for(self, params: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """A server-wide limit this request breaks before it starts, as (status, reason)."""
        if not self.server.can_start_request():
            return 503, "Service Unavailable: too many requests in flight"
        for name, value in params:
            if name == b"CONTENT_LENGTH":  # front ends send it early: the scan stops there
                length = value.strip()
                if length.isdigit() and int(length) > self.server.server_limits.max_body_size:
                    return 413, "Request Entity Too Large"
                return None
        return None

    def _stdin(self, cycle: RequestCycle, data: Content) -> None:
        cycle.last_input = self.last_activity
        cycle.body_size += len(data)
        if cycle.body_size > self.server.server_limits.max_body_size and not cycle.ended:
            log.warning(
                "request %d: body over max_body_size (%d bytes); stopped",
                cycle.request_id,
                self.server.server_limits.max_body_size,
            )
            self.server.stats.requests_refused += 1
            cycle.stop(413, "Request Entity Too Large")
        self._feed(cycle.body, data)

    def _abort_request(self, request_id: int) -> None:
        cycle = self.cycles.get(request_id)
        if cycle is None:  # aborted before its params were complete: no handler runs yet
            self.connection.end_request(request_id)
        else:
            cycle.abort(ClientGone("the request was aborted"))

    def _refuse(self, event: RequestRefused) -> None:
        log.warning("refused request %d: %s", event.request_id, event.reason)
        cycle = self.cycles.get(event.request_id)
        if cycle is None:  # refused while reading params: no cycle exists yet
            self._inputs_open += 1  # its input is discarded, never completed: linger at close
            cycle = RequestCycle(self, event.request_id, Role.RESPONDER, True, [])
            self.cycles[event.request_id] = cycle
        cycle.refuse(event.status, event.reason)

    def _feed(self, stream: BodyStream | None, data: Content) -> None:
        assert stream is not None
        stream.feed(data)
        self._input_buffered += len(data)
        if self._input_buffered > INPUT_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def input_consumed(self, n: int) -> None:
        """A stream released ``n`` bytes; resume reading below the low-water mark."""
        self._input_buffered -= n
        if self._reading_paused and self._input_buffered <= INPUT_LOW_WATER and not self.is_closed:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    # -- output ------------------------------------------------------------------------------

    def send_stdout(self, request_id: int, data: Content) -> None:
        """Frame ``data`` as STDOUT and hand it to the transport."""
        self.connection.send_stdout(request_id, data)
        self._flush()

    def send_stderr(self, request_id: int, data: bytes) -> None:
        """Frame ``data`` as STDERR and hand it to the transport."""
        self.connection.send_stderr(request_id, data)
        self._flush()

    def end_request(self, request_id: int, data: bytes, app_status: int) -> None:
        """Send final ``data`` and END_REQUEST; close the connection if it is done."""
        self.cycles.pop(request_id, None)
        if self.is_closed or not self.connection.is_active(request_id):
            return
        self.connection.end_request(request_id, app_status, data=data)
        self.last_activity = self.loop.time()  # idle time counts from the last request's end
        draining = self.closing and not self.cycles and not self.connection.should_close
        self._flush(POOL_OPT_OUT if draining else b"")
        self._close_if_done()

    def _close_if_done(self) -> None:
        """Close once no request is left that the peer still waits for: after a request without
        FCGI_KEEP_CONN (also one refused at BEGIN_REQUEST) or when a graceful close is pending."""
        if not (self.connection.should_close or (self.closing and not self.cycles)):
            return  # the common case, decided first: it runs after every read and response
        if self.is_closed or self.transport is None or self.transport.is_closing():
            return
        if self._linger_timer is None:
            if self._inputs_open or self.connection.input_buffered:
                self._linger(self.transport)  # the peer may still be sending
            else:
                self.transport.close()  # everything the peer sent was read: no reset possible

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close after the last response; close when the peer does (or at the timeout)."""
        if not transport.can_write_eof():
            transport.close()
            return
        self._linger_timer = self.loop.call_later(LINGER_TIMEOUT, transport.close)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        transport.write_eof()  # after the buffered output; the peer's EOF then closes us

    def _flush(self, extra: bytes = b"") -> None:
        buffers = self.connection.buffers_to_send()
        if extra:
            buffers.append(extra)
        if not buffers or self.is_closed:
            return
        assert self.transport is not None
        if len(buffers) == 1:
            self.transport.write(buffers[0])
        elif len(buffers) == 2 and len(buffers[0]) < ZERO_COPY_THRESHOLD:
            self.transport.write(b"".join(buffers))  # small: one short copy, one write
        else:
            if not self._send_buffer_sized:
                self._size_send_buffer()
            self.transport.writelines(buffers)  # scatter-gather: large payloads are not copied

    def _size_send_buffer(self) -> None:
        """Give a unix-socket connection its configured SO_SNDBUF, once it carries a large
        response: connections that only ever carry small ones skip the system call."""
        self._send_buffer_sized = True
        size = self.server.server_limits.send_buffer
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if size > 0 and sock is not None and sock.family == socket.AF_UNIX:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except (OSError, OverflowError) as error:  # the kernel default stays: slower only
                log.debug("SO_SNDBUF %d refused: %s", size, error)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self.is_closed:
            raise ClientGone("the connection closed")
        if not self._writing_paused:
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    @property
    def writing_paused(self) -> bool:
        """True while the transport holds more than its high-water mark for this peer."""
        return self._writing_paused

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain_waiters(None)

    def _wake_drain_waiters(self, error: Exception | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
