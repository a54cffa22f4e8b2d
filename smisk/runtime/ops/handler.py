"""OpsHandler: the handler in front of an interface's handler that makes a worker operable.

Rules: everything here runs on the event loop except ``ObservedPool._run`` (in handler threads,
which touches only the flight it was given and the counters under the pool's lock). The status
path is answered on the loop, before the application or its thread pool sees the request, so it
answers while every handler thread is busy. One periodic timer per worker checks the requests in
flight for ``--slow-request-timeout`` and ``--request-timeout``; it runs only while requests are
in flight. Log lines are formatted and written by the ``LogWriter`` thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from smisk.runtime.handler import stop_cycle
from smisk.runtime.ops.accesslog import AccessEntry, AccessFormat, LogWriter
from smisk.runtime.ops.slowlog import emit, task_stack, thread_stack
from smisk.runtime.ops.status import (
    CONNECTIONS_ACCEPTED,
    CONNECTIONS_ACTIVE,
    HANDLER_US,
    IN_FLIGHT,
    JSON_TYPE,
    MAX_CONNECTIONS_REACHED,
    MAX_IN_FLIGHT,
    OPENMETRICS_TYPE,
    PID,
    QUEUE_US,
    QUEUED,
    REQUESTS,
    REQUESTS_REFUSED,
    RESPONSES_2XX,
    SHED,
    SLOW,
    START_TIME,
    THREADS,
    THREADS_BUSY,
    THREADS_EXHAUSTED,
    TIMED_OUT,
    CounterBlock,
    StatusAccess,
    choose_format,
    render_json,
    render_openmetrics,
    snapshot,
)
from smisk.runtime.ops.watchdog import LoopWatchdog
from smisk.server.threads import Done, HandlerThreads

if TYPE_CHECKING:
    from smisk.runtime.ops import OpsConfig
    from smisk.server import RequestCycle, Server

__all__ = ["ObservedPool", "OpsHandler"]

log = logging.getLogger("smisk.ops")

P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[["RequestCycle"], Awaitable[None]]

# The checker runs this often: a tenth of the shortest timeout, within these bounds (a timeout
# fires at most that late; a worker with thousands of requests in flight scans them 20 times a
# second at most).
CHECK_MIN_INTERVAL = 0.05
CHECK_MAX_INTERVAL = 1.0
RETRY_AFTER = 1  # seconds a shed client is told to wait: queues drain in well under that
SHED_LOG_INTERVAL = 10.0  # at most one "overloaded" warning per this many seconds
# Weight of the newest handler run time in the pool's running mean: about the last 20 requests
# count, so the estimate follows a handler that turns slow within a fraction of a second of load.
SERVICE_TIME_WEIGHT = 0.05
HEAD_SCAN = 8192  # bytes searched for the end of a response's header block
CLIENT_GONE = 499  # nginx's status for a request whose client left before the answer

_STATUS_LINE = re.compile(rb"(?im)^status:[ \t]*(\d{3})")
_LOCATION = re.compile(rb"(?im)^location:")
_current: contextvars.ContextVar[_Flight | None] = contextvars.ContextVar(
    "smisk_ops_flight", default=None
)


def _page(status: int, reason: str, extra: str = "") -> bytes:
    body = f"{status} {reason}\n".encode()
    head = (
        f"Status: {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + body


TIMEOUT_PAGE = _page(504, "Gateway Timeout")
STATUS_REFUSED_PAGE = _page(403, "Forbidden")
SHED_PAGE = _page(503, "Service Unavailable", f"Retry-After: {RETRY_AFTER}\r\n")
TIMEOUT_BODY = len(TIMEOUT_PAGE) - TIMEOUT_PAGE.index(b"\r\n\r\n") - 4
SHED_BODY = len(SHED_PAGE) - SHED_PAGE.index(b"\r\n\r\n") - 4


def parse_head(data: bytes) -> tuple[int, int]:
    """(status, header block length) of a response's first output (CGI rules: ``Status:``,
    else 302 with ``Location:``, else 200)."""
    end = data.find(b"\r\n\r\n", 0, HEAD_SCAN)
    size = end + 4 if end >= 0 else len(data)
    if data.startswith(b"Status: ") and data[8:11].isdigit():
        return int(data[8:11]), size
    head = data[:size]
    match = _STATUS_LINE.search(head)
    if match:
        return int(match.group(1)), size
    return (302 if _LOCATION.search(head) else 200), size


class _Flight:
    """One request in flight: its timings and what it sent."""

    __slots__ = (
        "accounted",
        "body_bytes",
        "cycle",
        "ended_at",
        "slow_logged",
        "started",
        "status",
        "submitted",
        "thread_ident",
        "thread_started",
        "timed_out",
        "wall",
    )

    def __init__(self, cycle: RequestCycle, started: float) -> None:
        self.cycle = cycle
        self.started = started  # time.monotonic()
        self.wall = 0.0  # time.time(), for the log
        self.status = 0
        self.body_bytes = 0
        self.ended_at = 0.0
        self.submitted = False  # handed to a handler thread
        self.thread_started = 0.0
        self.thread_ident = 0
        self.slow_logged = False
        self.timed_out = False
        self.accounted = False

    def output(self, data: bytes) -> None:
        if self.status:
            self.body_bytes += len(data)
        elif data:
            self.status, head = parse_head(data)
            self.body_bytes = len(data) - head

    def handler_started(self) -> float:
        """When the handler began (0: still waiting for a thread)."""
        return self.thread_started if self.submitted else self.started


class _ObservedCycle:
    """The request cycle as the inner handler sees it: output is measured on its way out, and
    the request is counted and logged just before its END_REQUEST leaves (so a status query
    sent after a response always counts it)."""

    __slots__ = ("_account", "_cycle", "_flight")

    def __init__(
        self,
        cycle: RequestCycle,
        flight: _Flight,
        account: Callable[[_Flight, float, bool], None],
    ) -> None:
        self._cycle = cycle
        self._flight = flight
        self._account = account

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cycle, name)

    @property
    def on_abort(self) -> Callable[[], None] | None:
        return self._cycle.on_abort

    @on_abort.setter
    def on_abort(self, callback: Callable[[], None] | None) -> None:
        self._cycle.on_abort = callback

    @property
    def params(self) -> list[tuple[bytes, bytes]]:
        return self._cycle.params

    @property
    def body(self) -> Any:
        return self._cycle.body

    @property
    def is_active(self) -> bool:
        return self._cycle.is_active

    @property
    def output_started(self) -> bool:
        return self._cycle.output_started

    async def write(self, data: bytes) -> None:
        await self._cycle.write(data)
        self._flight.output(data)

    def write_nowait(self, data: bytes) -> None:
        self._cycle.write_nowait(data)
        self._flight.output(data)

    def end(self, data: bytes = b"", app_status: int = 0) -> None:
        cycle, flight = self._cycle, self._flight
        if not cycle.ended and not flight.accounted:
            flight.output(data)
            flight.ended_at = time.monotonic()
            self._account(flight, flight.ended_at, False)
        cycle.end(data, app_status)


class ObservedPool(HandlerThreads):
    """A handler thread pool that counts queued and busy threads into a counter slot, tells
    each request's flight when (and on which thread) its handler started, and knows how long
    its queue has waited (``overloaded``)."""

    def __init__(self, threads: int, prefix: str, slot: memoryview) -> None:
        super().__init__(threads, prefix)
        self.threads = threads
        self.queued = 0
        self.busy = 0
        self.service_time = 0.0  # running mean of handler run times, seconds
        # When each waiting request was queued, oldest first: the queue is FIFO, so whichever
        # thread starts next takes the oldest.
        self._waiting: deque[float] = deque()
        self._slot = slot
        self._count_lock = threading.Lock()
        slot[THREADS] = threads

    def overloaded(self, max_queue: int, max_wait: float) -> bool:
        """True when a new request should be shed: ``max_queue`` requests wait (0: no cap), or
        the oldest waiting request has waited longer than ``max_wait`` seconds, or the queue is
        predicted to take longer than that to drain at the handler's usual pace. Work a free
        thread is about to take does not wait (the threads get the work of a loop pass at its
        end, so a burst counts as queued until then). Called on the loop; reads without the
        lock (a stale value only shifts one decision)."""
        queued = self.queued - max(self.threads - self.busy, 0)
        if queued <= 0:
            return False
        if max_queue and queued >= max_queue:
            return True
        if max_wait <= 0:
            return False
        try:
            oldest = self._waiting[0]
        except IndexError:  # taken by a thread meanwhile
            return False
        drain = queued * self.service_time / self.threads
        return time.monotonic() - oldest > max_wait or drain > max_wait

    @classmethod
    def replacing(cls, pool: HandlerThreads, slot: memoryview) -> ObservedPool:
        """A pool of the same size and thread names (``pool`` must not have run anything)."""
        observed = cls(pool.max_threads, pool.name_prefix, slot)
        pool.shutdown(wait=False)
        return observed

    def submit(
        self, loop: asyncio.AbstractEventLoop, done: Done, fn: Callable[..., Any], *args: Any
    ) -> None:
        """Count the work as queued, and run it through ``_run`` (see ``HandlerThreads``)."""
        flight = _current.get()
        if flight is not None:
            flight.submitted = True
        slot = self._slot
        with self._count_lock:
            if self.busy + self.queued >= self.threads:
                slot[THREADS_EXHAUSTED] += 1
            self.queued += 1
            self._waiting.append(time.monotonic())
            slot[QUEUED] = self.queued
        super().submit(loop, done, self._run, flight, fn, args)

    def _run(self, flight: _Flight | None, fn: Callable[..., T], args: Any) -> T:
        slot = self._slot
        with self._count_lock:
            self.queued -= 1
            self._waiting.popleft()
            self.busy += 1
            slot[QUEUED], slot[THREADS_BUSY] = self.queued, self.busy
        started = time.monotonic()
        try:
            if flight is not None:
                if flight.timed_out:  # answered 504 while it waited: never run it
                    return None  # type: ignore[return-value]  # "nothing to send" to both callers
                flight.thread_ident = threading.get_ident()
                flight.thread_started = started
            return fn(*args)
        finally:
            ran = time.monotonic() - started
            with self._count_lock:
                self.busy -= 1
                slot[THREADS_BUSY] = self.busy
                self.service_time += (ran - self.service_time) * SERVICE_TIME_WEIGHT


RUN_CODE = ObservedPool._run.__code__  # stacks in the slow log start below this frame


class OpsHandler:
    """Serves the status path, times requests, writes the access and slow logs, enforces
    ``request_timeout`` and sheds load, in front of ``inner`` (any interface's handler).

    ``pool_owner`` is the object whose ``executor`` (a HandlerThreads not yet used) runs
    sync handlers; it is replaced by an ``ObservedPool``. ``block``/``slot`` say where this
    worker's counters go (a private one-slot block by default).
    """

    def __init__(
        self,
        inner: Handler,
        config: OpsConfig,
        *,
        pool_owner: object | None = None,
        block: CounterBlock | None = None,
        slot: int = 1,
    ) -> None:
        self.inner = inner
        self.config = config
        self.block = block if block is not None else CounterBlock(1)
        self.slot = self.block.slot(slot)
        self.slot[PID] = os.getpid()
        if not self.slot[START_TIME]:
            self.slot[START_TIME] = int(time.time())
        self.pool = _observe(inner if pool_owner is None else pool_owner, self.slot)
        self.max_queue = config.max_queue or 0
        self.max_queue_time = config.max_queue_time
        path = config.status_path
        self.status_path = path.encode("latin-1") if path else None
        self._status_query = (path + "?").encode("latin-1") if path else b""
        self.status_access = StatusAccess.parse(config.status_allow)
        self._share = self.block.shared and path is not None
        self.writer = _writer_for(config)
        self.flights: set[_Flight] = set()
        self.interval = _check_interval(config)
        self.server: Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.watchdog: LoopWatchdog | None = None
        self._closed = False
        self._shed_logged_at = float("-inf")
        self._shed_unlogged = 0
        observing = config.observes or self.interval > 0
        self._serve: Callable[[RequestCycle], Awaitable[None]] = (
            self._observed if observing else self._shed_only
        )
        # Only shedding: a handler that serves requests without a task keeps doing so (see
        # Server.start_cycle); timing and logging need the task path.
        self._inner_direct: Callable[[RequestCycle], None] | None = getattr(
            inner, "serve_direct", None
        )
        self.serve_direct: Callable[[RequestCycle], None] | None = (
            self._shed_direct if not observing and self._inner_direct is not None else None
        )

    def attach(self, server: Server) -> None:
        """The server this handler serves (its connection counters go to the status page).
        Called on the loop; with the slow log on, it also starts the loop watchdog."""
        self.server = server
        if self.config.slow_request_timeout > 0 and self.watchdog is None:
            self.watchdog = LoopWatchdog(self.config.slow_request_timeout)
            self.watchdog.start()

    def __call__(self, cycle: RequestCycle) -> Awaitable[None]:
        return self._serve(cycle)

    # -- the two request paths ---------------------------------------------------------------

    async def _shed_only(self, cycle: RequestCycle) -> None:
        pool = self.pool
        if pool is not None and pool.overloaded(self.max_queue, self.max_queue_time):
            self._shed(cycle)
            return
        await self.inner(cycle)

    def _shed_direct(self, cycle: RequestCycle) -> None:
        """``_shed_only`` for a request the server hands over without a task."""
        pool = self.pool
        if pool is not None and pool.overloaded(self.max_queue, self.max_queue_time):
            self._shed(cycle)
            cycle.protocol.server.finish_cycle(cycle)
            return
        assert self._inner_direct is not None
        self._inner_direct(cycle)

    async def _observed(self, cycle: RequestCycle) -> None:
        if self.status_path is not None and self._is_status(cycle.params):
            self._answer_status(cycle)
            return
        pool = self.pool
        if pool is not None and pool.overloaded(self.max_queue, self.max_queue_time):
            self._shed(cycle)
            return
        flight = _Flight(cycle, time.monotonic())
        flight.wall = time.time()
        self._enter(flight)
        _current.set(flight)  # this request task's own context: seen by ObservedPool.submit
        failed = False
        try:
            observed: Any = _ObservedCycle(cycle, flight, self._account)  # a RequestCycle to it
            await self.inner(observed)
        except BaseException:
            failed = True
            raise
        finally:
            self._leave(flight, failed)

    def _enter(self, flight: _Flight) -> None:
        self.flights.add(flight)
        slot = self.slot
        slot[IN_FLIGHT] += 1
        if slot[IN_FLIGHT] > slot[MAX_IN_FLIGHT]:
            slot[MAX_IN_FLIGHT] = slot[IN_FLIGHT]
        if self._timer is None and self.interval > 0 and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._check)

    def _leave(self, flight: _Flight, failed: bool) -> None:
        self.flights.discard(flight)
        self.slot[IN_FLIGHT] -= 1
        if not flight.accounted:
            self._account(flight, time.monotonic(), failed)
        if self._share:  # other workers read this slot: keep its connection counts fresh
            self._publish()

    def _account(self, flight: _Flight, now: float, failed: bool) -> None:
        """Count a finished (or timed-out) request and log it."""
        flight.accounted = True
        cycle = flight.cycle
        status = flight.status or (
            CLIENT_GONE if cycle.aborted and not flight.timed_out else 500 if failed else 200
        )
        end = flight.ended_at or now
        handler_start = flight.handler_started() or end  # never got a thread: all queue time
        queue, handler = handler_start - flight.started, end - handler_start
        slot = self.slot
        slot[REQUESTS] += 1
        if 200 <= status < 600:
            slot[RESPONSES_2XX + status // 100 - 2] += 1
        slot[QUEUE_US] += int(queue * 1e6)
        slot[HANDLER_US] += int(handler * 1e6)
        if self.writer is not None and self.writer.access is not None:
            times = (end - flight.started, queue, handler)
            entry = AccessEntry(cycle.params, flight.wall, status, flight.body_bytes, times)
            self.writer.put(entry)

    # -- the status endpoint -----------------------------------------------------------------

    def _is_status(self, params: list[tuple[bytes, bytes]]) -> bool:
        script = b""
        for name, value in params:
            if name == b"REQUEST_URI":
                return value == self.status_path or value.startswith(self._status_query)
            if name == b"SCRIPT_NAME":
                script = value
        return script == self.status_path

    def _answer_status(self, cycle: RequestCycle) -> None:
        params = dict(cycle.params)
        remote = params.get(b"REMOTE_ADDR")
        if not self.status_access.allows(remote):
            log.info(
                "status page refused to %s (not in --status-allow)",
                remote.decode("latin-1") if remote else "a client without REMOTE_ADDR",
            )
            cycle.end(STATUS_REFUSED_PAGE)
            return
        query = params.get(b"QUERY_STRING", b"").decode("latin-1")
        accept = params.get(b"HTTP_ACCEPT", b"").decode("latin-1")
        self._publish()
        snap = snapshot(self.block)
        if choose_format(query, accept) == "openmetrics":
            body, kind = render_openmetrics(snap), OPENMETRICS_TYPE
        else:
            body, kind = render_json(snap, os.getpid()), JSON_TYPE
        head = (
            f"Status: 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n\r\n"
        )
        cycle.end(head.encode("latin-1") + body)

    def _publish(self) -> None:
        """Copy the server's connection counters into this worker's slot."""
        server = self.server
        if server is None:
            return
        stats, slot = server.stats, self.slot
        slot[CONNECTIONS_ACCEPTED] = stats.accepted_connections
        slot[CONNECTIONS_ACTIVE] = len(server.connections)
        slot[MAX_CONNECTIONS_REACHED] = getattr(stats, "accept_pauses", 0)
        slot[REQUESTS_REFUSED] = getattr(stats, "requests_refused", 0)

    # -- overload ----------------------------------------------------------------------------

    def _shed(self, cycle: RequestCycle) -> None:
        """The queue is too old (or too long): 503 with Retry-After through STDOUT (nginx
        turns END_REQUEST(OVERLOADED) into a 502)."""
        slot = self.slot
        slot[SHED] += 1
        slot[REQUESTS] += 1
        slot[RESPONSES_2XX + 3] += 1  # 5xx
        cycle.end(SHED_PAGE)
        if self.writer is not None and self.writer.access is not None:
            entry = AccessEntry(cycle.params, time.time(), 503, SHED_BODY, (0.0, 0.0, 0.0))
            self.writer.put(entry)
        self._shed_unlogged += 1
        now = time.monotonic()
        if now - self._shed_logged_at >= SHED_LOG_INTERVAL:
            pool = self.pool
            log.warning(
                "overloaded (%d requests waiting for %d threads, handlers take %.1f ms; "
                "--max-queue-time %g s, --max-queue %s): %d requests answered 503",
                pool.queued if pool is not None else 0,
                pool.threads if pool is not None else 0,
                pool.service_time * 1000 if pool is not None else 0.0,
                self.max_queue_time,
                self.max_queue or "none",
                self._shed_unlogged,
            )
            self._shed_logged_at, self._shed_unlogged = now, 0

    # -- the periodic check: slow requests and timeouts --------------------------------------

    def _check(self) -> None:
        self._timer = None
        now = time.monotonic()
        timeout, slow = self.config.request_timeout, self.config.slow_request_timeout
        for flight in list(self.flights):
            if flight.timed_out or flight.cycle.ended:
                continue
            if timeout > 0 and now - flight.started >= timeout:
                self._time_out(flight, now)
                continue
            started = flight.handler_started()
            if slow > 0 and not flight.slow_logged and started and now - started >= slow:
                self._log_slow(flight, now - started)
        if self.status_path is not None:
            self._publish()
        if self.flights and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._check)

    def _time_out(self, flight: _Flight, now: float) -> None:
        cycle = flight.cycle
        stack = self._stack(flight)
        flight.timed_out = True
        self.slot[TIMED_OUT] += 1
        if not cycle.output_started:
            flight.status, flight.body_bytes = 504, TIMEOUT_BODY
        flight.ended_at = now
        stop_cycle(cycle, TIMEOUT_PAGE, "request timeout")
        self._account(flight, now, False)
        if not flight.submitted:
            fate = "its task was cancelled"
        elif flight.thread_started:
            fate = "its thread runs on until the handler returns; what it writes is dropped"
        else:
            fate = "it was still waiting for a thread and will not run"
        headline = (
            f"request timeout ({self.config.request_timeout:g} s): {_describe(cycle)} "
            f"answered 504; {fate}"
        )
        self._report(headline, stack)

    def _log_slow(self, flight: _Flight, running: float) -> None:
        stack = self._stack(flight)
        if flight.submitted and stack is None:
            return  # between threads: look again next time
        flight.slow_logged = True
        self.slot[SLOW] += 1
        headline = f"slow request ({running:.3f} s in the handler): {_describe(flight.cycle)}"
        self._report(headline, stack)

    def _stack(self, flight: _Flight) -> Any:
        if flight.submitted:
            ident = flight.thread_ident
            if not ident or not flight.thread_started:
                return None
            stack = thread_stack(ident, RUN_CODE)
            return stack if flight.thread_ident == ident else None  # still this request's
        task = flight.cycle.task
        return task_stack(task, OBSERVED_CODE) if task is not None else None

    def _report(self, headline: str, stack: Any) -> None:
        if self.writer is not None:
            self.writer.put(lambda: emit(headline, stack))
        else:  # not reached: a checker always has a writer
            emit(headline, stack)

    # -- lifecycle ---------------------------------------------------------------------------

    async def startup(self) -> None:
        """The inner handler's start-up (an ASGI lifespan), if it has one."""
        startup = getattr(self.inner, "startup", None)
        if startup is not None:
            await startup()

    async def shutdown(self) -> None:
        """The inner handler's shutdown, if any; then ``aclose()``."""
        shutdown = getattr(self.inner, "shutdown", None)
        if shutdown is not None:
            await shutdown()
        await self.aclose()

    def close(self) -> None:
        """Release the inner handler's threads (blocking, as the inner ``close()``)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Stop the checker and flush the logs (after the server closed)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
        if self.writer is not None:
            self.writer.flush()
            await asyncio.get_running_loop().run_in_executor(None, self.writer.close)


OBSERVED_CODE = OpsHandler._observed.__code__  # task stacks in the slow log start below this


def _describe(cycle: RequestCycle) -> str:
    method = uri = b""
    for name, value in cycle.params:
        if name == b"REQUEST_METHOD":
            method = value
        elif name == b"REQUEST_URI":
            uri = value
    text = f"{method.decode('latin-1')} {uri.decode('latin-1')}".strip()
    return f"{text or 'request'} (pid {os.getpid()})"


def _observe(owner: object, slot: memoryview) -> ObservedPool | None:
    executor = getattr(owner, "executor", None)
    if isinstance(executor, ObservedPool):
        return executor
    if not isinstance(executor, HandlerThreads):
        return None
    pool = ObservedPool.replacing(executor, slot)
    owner.executor = pool  # type: ignore[attr-defined]
    return pool


def _writer_for(config: OpsConfig) -> LogWriter | None:
    access = AccessFormat(config.access_log) if config.access_log else None
    if access is None and config.slow_request_timeout <= 0 and config.request_timeout <= 0:
        return None
    return LogWriter(access, config.access_log_file)


def _check_interval(config: OpsConfig) -> float:
    timeouts = [t for t in (config.slow_request_timeout, config.request_timeout) if t > 0]
    if not timeouts:
        return 0.0
    return min(max(min(timeouts) / 10, CHECK_MIN_INTERVAL), CHECK_MAX_INTERVAL)
