"""Server: serves a handler on listeners, tracks connections and requests, closes gracefully.

Rules: owns every task it starts (kept in a set until done) and counts the requests a handler
serves without a task (``serve_direct``) the same way; graceful close stops accepting, lets
in-flight requests finish within a deadline, closes idle keep-alive connections, returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable, Iterable

from smisk.protocol import Limits
from smisk.server.cycle import Handler, RequestCycle
from smisk.server.limits import AUTO_ACCEPTORS, ServerLimits, accepts_one_per_pass, is_allowed
from smisk.server.listener import Address, Listener
from smisk.server.protocol import FastCGIProtocol

__all__ = ["Server", "ServerStats"]

log = logging.getLogger("smisk.server")

DEFAULT_MAX_CONNECTIONS = 4096  # Reported as FCGI_MAX_CONNS; bounded by the fd limit in practice.
DEFAULT_GRACEFUL_TIMEOUT = 30.0  # Seconds in-flight requests get to finish on close.
DEFAULT_IDLE_TIMEOUT = (
    300.0  # Seconds an idle keep-alive connection is kept (nginx reuses its pool).
)
# The sweep over connections runs this often (a quarter of the shortest timeout, within these
# bounds): timeouts fire at most that late, and thousands of connections cost one pass.
SWEEP_MIN_INTERVAL = 0.05
SWEEP_MAX_INTERVAL = 15.0


class ServerStats:
    """Counters an operator reads from the status endpoint."""

    __slots__ = (
        "accept_pauses",
        "accepted_connections",
        "refused_connections",
        "requests_finished",
        "requests_refused",
        "requests_started",
        "timeouts",
    )

    def __init__(self) -> None:
        self.accepted_connections = 0
        self.refused_connections = 0  # over max_connections or not in allow_from
        self.accept_pauses = 0  # times accepting paused at max_connections
        self.requests_started = 0
        self.requests_finished = 0
        self.requests_refused = 0  # over max_requests or max_body_size
        self.timeouts = 0  # connections closed by params_timeout or body_timeout


class Server:
    """Serves ``handler`` over FastCGI on one or more listeners, on the running loop."""

    def __init__(
        self,
        handler: Handler,
        *,
        limits: Limits | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        server_limits: ServerLimits | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits if limits is not None else Limits()
        # Without an explicit value, FCGI_WEB_SERVER_ADDRS and SMISK_* variables apply.
        self.server_limits = (
            server_limits if server_limits is not None else ServerLimits.from_environ()
        )
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stats = ServerStats()
        self.listeners: list[Listener] = []
        self.connections: set[FastCGIProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        # Requests the handler serves without a task (see ``start_cycle``), in flight until it
        # calls ``finish_cycle`` or ``continue_in_task``.
        self.direct: set[RequestCycle] = set()
        self._serve_direct: Callable[[RequestCycle], None] | None = getattr(
            handler, "serve_direct", None
        )
        self._direct_drained: asyncio.Future[None] | None = None
        self._servers: list[asyncio.Server] = []
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._closing = False
        self._lingering = False
        self._idle_sweeper: asyncio.TimerHandle | None = None
        self._accept_paused = False
        self._resuming: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> list[Address]:
        """The addresses being served (port 0 resolved)."""
        return [listener.bound_address for listener in self.listeners]

    async def start(self, listeners: Iterable[Listener]) -> None:
        """Start accepting connections on ``listeners`` (the server closes them on close)."""
        self.listeners.extend(listeners)
        await self._serve_listeners(list(listeners))
        self._schedule_idle_sweep()

    async def _serve_listeners(self, listeners: list[Listener]) -> None:
        """Accept on duplicates of each listening socket: closing the asyncio servers (to pause
        accepting) closes only the duplicates, and the kernel keeps queueing connections. There
        are ``acceptors`` duplicates per socket (``ServerLimits.acceptors``)."""
        loop = asyncio.get_running_loop()
        for listener in listeners:
            for _ in range(self.acceptors(loop)):
                sock = socket.socket(fileno=os.dup(listener.socket.fileno()))
                try:
                    server = await loop.create_server(
                        lambda: FastCGIProtocol(self), sock=sock, backlog=listener.backlog
                    )
                except BaseException:
                    sock.close()
                    raise
                self._servers.append(server)

    def acceptors(self, loop: asyncio.AbstractEventLoop) -> int:
        """Accepting servers per listening socket on ``loop``: the configured number, or
        ``AUTO_ACCEPTORS`` on a loop that takes one connection per pass (uvloop), else 1."""
        configured = self.server_limits.acceptors
        if configured > 0:
            return configured
        return AUTO_ACCEPTORS if accepts_one_per_pass(loop) else 1

    def _pause_accepting(self) -> None:
        if self._accept_paused or self._closing:
            return
        self._accept_paused = True
        self.stats.accept_pauses += 1
        log.warning(
            "max_connections (%d) reached: accepting paused until one closes",
            self.max_connections,
        )
        for server in self._servers:
            server.close()
        self._servers.clear()

    def _resume_accepting(self) -> None:
        if not self._accept_paused or self._closing or self._resuming is not None:
            return
        self._accept_paused = False
        log.info("accepting connections again (%d open)", len(self.connections))
        self._resuming = asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        try:
            await self._serve_listeners(self.listeners)
        finally:
            self._resuming = None
        if self._closing:  # closed while resuming
            for server in self._servers:
                server.close()
            self._servers.clear()

    # -- bookkeeping called by connections ---------------------------------------------------

    def connection_made(self, protocol: FastCGIProtocol) -> None:
        """A connection was accepted."""
        self.stats.accepted_connections += 1
        if not self._allowed(protocol):
            return
        if len(self.connections) >= self.max_connections:
            # GET_VALUES reports max_connections as FCGI_MAX_CONNS; hold the server to it. Those
            # accepted in the same pass as the one that filled the table (up to one per
            # accepting server) are dropped.
            log.warning("refusing a connection: %d already open", len(self.connections))
            self.stats.refused_connections += 1
            protocol.abort()
            return
        self.connections.add(protocol)
        if len(self.connections) >= self.max_connections:
            self._pause_accepting()
        self._all_closed.clear()
        if self._closing and self._lingering:
            protocol.closing = True  # accepted just before close: its request is on the way
        elif self._closing:
            protocol.close()

    def _allowed(self, protocol: FastCGIProtocol) -> bool:
        allow_from = self.server_limits.allow_from
        if not allow_from or protocol.trusted_peer:
            return True
        assert protocol.transport is not None
        peer = protocol.transport.get_extra_info("peername")
        if is_allowed(peer, allow_from):
            return True
        log.warning("refusing a connection from %r: not in allow_from", peer or "a unix socket")
        self.stats.refused_connections += 1
        protocol.abort()
        return False

    def connection_lost(self, protocol: FastCGIProtocol) -> None:
        """A connection closed."""
        self.connections.discard(protocol)
        if not self.connections:
            self._all_closed.set()
        if self._accept_paused and len(self.connections) < self.max_connections:
            self._resume_accepting()

    def can_start_request(self) -> bool:
        """False when ``max_requests`` requests are already in flight in this process."""
        return len(self.tasks) + len(self.direct) < self.server_limits.max_requests

    def start_cycle(self, cycle: RequestCycle) -> None:
        """Serve a received request: by the handler's ``serve_direct(cycle)`` when it has one
        (a sync service handed to a thread needs no task; the handler later calls
        ``finish_cycle`` or ``continue_in_task``), else as a task owned by the server."""
        self.stats.requests_started += 1
        serve_direct = self._serve_direct
        if serve_direct is not None:
            self.direct.add(cycle)
            serve_direct(cycle)
            return
        self._start_task(cycle, self.handler)

    def finish_cycle(self, cycle: RequestCycle, error: BaseException | None = None) -> None:
        """A request served without a task is done: end it (``error`` is what its handler
        raised, None when it returned; see ``RequestCycle.finish``) and count it."""
        self.direct.discard(cycle)
        self.stats.requests_finished += 1
        self._direct_left()
        cycle.finish(error)

    def continue_in_task(self, cycle: RequestCycle, handler: Handler) -> None:
        """A request served without a task has more to await: ``handler(cycle)`` runs the rest
        as a task owned by the server, ended and counted as a task-served request."""
        self.direct.discard(cycle)
        self._direct_left()
        self._start_task(cycle, handler)

    def _direct_left(self) -> None:
        drained = self._direct_drained
        if drained is not None and not self.direct and not drained.done():
            drained.set_result(None)

    def _start_task(self, cycle: RequestCycle, handler: Handler) -> None:
        task = cycle.protocol.loop.create_task(cycle.run(handler))
        cycle.task = task
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._cycle_done, cycle))

    def _cycle_done(self, cycle: RequestCycle, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        # A task cancelled before its first step (an abort in the same read as the request)
        # never ran ``RequestCycle.run``; the request must still get its END_REQUEST.
        cycle.end()
        # The task's frame and an on_abort callback (a handler's bound method) hold the cycle:
        # dropped here, the request's objects are freed at once instead of by the cyclic GC,
        # which at hundreds of requests in flight finds them only in its rare full collections.
        cycle.task = None
        cycle.on_abort = None
        self.stats.requests_finished += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed", exc_info=task.exception())

    # -- idle connections --------------------------------------------------------------------

    def _sweep_interval(self) -> float:
        limits = self.server_limits
        timeouts = [self.idle_timeout, limits.params_timeout, limits.body_timeout]
        shortest = min((t for t in timeouts if t > 0), default=0.0)
        return min(max(shortest / 4, SWEEP_MIN_INTERVAL), SWEEP_MAX_INTERVAL) if shortest else 0

    def _schedule_idle_sweep(self) -> None:
        interval = self._sweep_interval()
        if interval > 0 and not self._closing:
            loop = asyncio.get_running_loop()
            self._idle_sweeper = loop.call_later(interval, self._sweep_idle)

    def _sweep_idle(self) -> None:
        now = asyncio.get_running_loop().time()
        idle_deadline = now - self.idle_timeout if self.idle_timeout > 0 else float("-inf")
        for protocol in list(self.connections):
            if protocol.check_timeouts(now, self.server_limits):
                self.stats.timeouts += 1
            elif not protocol.cycles and protocol.last_activity < idle_deadline:
                protocol.close()
        self._schedule_idle_sweep()

    # -- shutdown ----------------------------------------------------------------------------

    async def close(
        self, timeout: float = DEFAULT_GRACEFUL_TIMEOUT, *, linger: float = 0.0
    ) -> None:
        """Stop accepting; let in-flight requests finish within ``timeout`` seconds; close.

        With ``linger``, idle keep-alive connections stay open that long: a request the web
        server already sent on one is served, and the connection closes after it; only those
        still idle afterwards are closed (recycling and reloads without failed requests).
        """
        self._closing = True
        if self._idle_sweeper is not None:
            self._idle_sweeper.cancel()
        if self._resuming is not None:
            await asyncio.wait([self._resuming])
        for server in self._servers:
            server.close()
        for listener in self.listeners:
            listener.close()
        for protocol in list(self.connections):
            if linger > 0 and not protocol.cycles:
                protocol.closing = True  # closes after its next request ends
            else:
                protocol.close()
        if linger > 0:
            await self._linger(min(linger, timeout))
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
        except TimeoutError:
            log.warning("graceful close timed out; dropping %d connections", len(self.connections))
            for protocol in list(self.connections):
                protocol.abort()
        await self._end_in_flight()
        self._servers.clear()

    async def _end_in_flight(self) -> None:
        """Cancel the request tasks still running and wait for them, and for the requests
        served without a task (a handler thread cannot be stopped: it is waited for, as a
        cancelled task waits for its thread). The rest of such a request may go on in a task."""
        while self.tasks or self.direct:
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.wait(self.tasks)
            if self.direct:
                self._direct_drained = asyncio.get_running_loop().create_future()
                try:
                    await self._direct_drained
                finally:
                    self._direct_drained = None

    async def _linger(self, linger: float) -> None:
        self._lingering = True
        try:
            await asyncio.wait_for(self._all_closed.wait(), linger)
        except TimeoutError:
            for protocol in list(self.connections):
                protocol.close()
        finally:
            self._lingering = False

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
