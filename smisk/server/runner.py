"""Server: serves a handler on listeners, tracks connections and requests, closes gracefully.

Rules: owns every task it starts (kept in a set until done); graceful close stops accepting,
lets in-flight requests finish within a deadline, closes idle keep-alive connections, returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable

from smisk.protocol import Limits
from smisk.server.cycle import Handler, RequestCycle
from smisk.server.listener import Address, Listener
from smisk.server.protocol import FastCGIProtocol

__all__ = ["Server", "ServerStats"]

log = logging.getLogger("smisk.server")

DEFAULT_MAX_CONNECTIONS = 4096  # Reported as FCGI_MAX_CONNS; bounded by the fd limit in practice.
DEFAULT_GRACEFUL_TIMEOUT = 30.0  # Seconds in-flight requests get to finish on close.
DEFAULT_IDLE_TIMEOUT = (
    300.0  # Seconds an idle keep-alive connection is kept (nginx reuses its pool).
)


class ServerStats:
    """Counters an operator reads from the status endpoint."""

    __slots__ = ("accepted_connections", "requests_finished", "requests_started")

    def __init__(self) -> None:
        self.accepted_connections = 0
        self.requests_started = 0
        self.requests_finished = 0


class Server:
    """Serves ``handler`` over FastCGI on one or more listeners, on the running loop."""

    def __init__(
        self,
        handler: Handler,
        *,
        limits: Limits | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.handler = handler
        self.limits = limits if limits is not None else Limits()
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stats = ServerStats()
        self.listeners: list[Listener] = []
        self.connections: set[FastCGIProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._closing = False
        self._lingering = False
        self._idle_sweeper: asyncio.TimerHandle | None = None

    @property
    def addresses(self) -> list[Address]:
        """The addresses being served (port 0 resolved)."""
        return [listener.bound_address for listener in self.listeners]

    async def start(self, listeners: Iterable[Listener]) -> None:
        """Start accepting connections on ``listeners`` (the server closes them on close)."""
        loop = asyncio.get_running_loop()
        for listener in listeners:
            server = await loop.create_server(
                lambda: FastCGIProtocol(self),
                sock=listener.socket,
                backlog=listener.backlog,
                start_serving=True,
            )
            self.listeners.append(listener)
            self._servers.append(server)
        self._schedule_idle_sweep()

    # -- bookkeeping called by connections ---------------------------------------------------

    def connection_made(self, protocol: FastCGIProtocol) -> None:
        """A connection was accepted."""
        self.stats.accepted_connections += 1
        if len(self.connections) >= self.max_connections:
            # GET_VALUES reports max_connections as FCGI_MAX_CONNS; hold the server to it.
            log.warning("refusing a connection: %d already open", len(self.connections))
            protocol.abort()
            return
        self.connections.add(protocol)
        self._all_closed.clear()
        if self._closing and self._lingering:
            protocol.closing = True  # accepted just before close: its request is on the way
        elif self._closing:
            protocol.close()

    def connection_lost(self, protocol: FastCGIProtocol) -> None:
        """A connection closed."""
        self.connections.discard(protocol)
        if not self.connections:
            self._all_closed.set()

    def start_cycle(self, cycle: RequestCycle) -> None:
        """Run the handler for a received request as a task owned by the server."""
        self.stats.requests_started += 1
        task = asyncio.get_running_loop().create_task(cycle.run(self.handler))
        cycle.task = task
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._cycle_done, cycle))

    def _cycle_done(self, cycle: RequestCycle, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        # A task cancelled before its first step (an abort in the same read as the request)
        # never ran ``RequestCycle.run``; the request must still get its END_REQUEST.
        cycle.end()
        self.stats.requests_finished += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed", exc_info=task.exception())

    # -- idle connections --------------------------------------------------------------------

    def _schedule_idle_sweep(self) -> None:
        if self.idle_timeout > 0 and not self._closing:
            loop = asyncio.get_running_loop()
            self._idle_sweeper = loop.call_later(self.idle_timeout / 2, self._sweep_idle)

    def _sweep_idle(self) -> None:
        deadline = asyncio.get_running_loop().time() - self.idle_timeout
        for protocol in list(self.connections):
            if not protocol.cycles and protocol.last_activity < deadline:
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
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        self._servers.clear()

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
