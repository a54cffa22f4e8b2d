"""Embedding: run an Application's FastCGI server on an asyncio loop someone else owns.

Rules: everything runs on the caller's running loop; nothing here installs signal handlers unless
asked (``handle_signals=True``); every listener this module binds is closed by ``close()``. The
process model (``smisk.runtime.workers``) runs one ``EmbeddedServer`` per worker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from smisk.core.application import Application
from smisk.core.frontend import TrustedProxies
from smisk.runtime.handler import ApplicationHandler
from smisk.runtime.interfaces import detect_interface, make_handler, start_handler, stop_handler
from smisk.runtime.mode import apply_mode, check_mode
from smisk.runtime.ops import CounterBlock, OpsConfig, wrap_handler
from smisk.runtime.ops.handler import OpsHandler
from smisk.server import Address, Listener, RequestCycle, Server, bind_listener
from smisk.server.listener import DEFAULT_BACKLOG

__all__ = ["EmbeddedServer", "instantiate", "serve"]

log = logging.getLogger("smisk")

DEFAULT_GRACEFUL_TIMEOUT = 30.0  # Seconds in-flight requests get to finish on close().
# Seconds idle keep-alive connections stay open on a graceful close: a web server may already
# have sent a request on one (nginx reuses its most recent connection first); the ones still idle
# after this are deep in its pool and closed.
DRAIN_LINGER = 1.0


def instantiate(target: Any) -> Application:
    """Return an Application from an instance, an Application class or a factory of one."""
    if isinstance(target, Application):
        return target
    if callable(target):
        app = target()
        if isinstance(app, Application):
            return app
        kind = "class" if inspect.isclass(target) else "factory"
        raise TypeError(f"the {kind} {target!r} did not produce an Application")
    raise TypeError(f"{target!r} is not an Application, an Application class or a factory")


class _CountingHandler:
    """Calls ``on_limit`` once ``limit`` requests have started (``--max-requests``)."""

    __slots__ = ("count", "inner", "limit", "on_limit", "serve_direct")

    def __init__(self, inner: ApplicationHandler, limit: int, on_limit: Callable[[], None]) -> None:
        self.inner = inner
        self.limit = limit
        self.on_limit = on_limit
        self.count = 0
        # Requests the inner handler serves without a task are counted on that path too.
        self.serve_direct: Callable[[RequestCycle], None] | None = (
            self._count_direct if getattr(inner, "serve_direct", None) is not None else None
        )

    def _counted(self) -> None:
        self.count += 1
        if self.count == self.limit:
            self.on_limit()

    async def __call__(self, cycle: RequestCycle) -> None:
        self._counted()
        await self.inner(cycle)

    def _count_direct(self, cycle: RequestCycle) -> None:
        self._counted()
        assert self.inner.serve_direct is not None
        self.inner.serve_direct(cycle)


class EmbeddedServer:
    """One Application served over FastCGI on the running loop.

    Use as ``async with serve(app, bind=...) as server`` or call ``start()`` and ``close()``.
    ``addresses`` lists the bound addresses (port 0 resolved) once started.
    """

    def __init__(
        self,
        app: Any,
        bind: str | Sequence[str] = (),
        *,
        listeners: Iterable[Listener] = (),
        http: str | Sequence[str] = (),
        http_listeners: Iterable[Listener] = (),
        threads: int | None = None,
        backlog: int = DEFAULT_BACKLOG,
        graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
        max_requests: int = 0,
        on_retire: Callable[[], None] | None = None,
        handle_signals: bool = False,
        ops: OpsConfig | None = None,
        ops_block: CounterBlock | None = None,
        ops_slot: int = 1,
        interface: str = "smisk",
        mount: str = "",
        forwarded_allow_ips: str | Sequence[str] = (),
        env: str | None = None,
    ) -> None:
        self.interface = detect_interface(app) if interface == "auto" else interface
        self.env = check_mode(env)
        # A WSGI/ASGI application is served as it is; a smisk one is instantiated here.
        self.app: Any = instantiate(app) if self.interface == "smisk" else app
        if self.interface == "smisk":
            apply_mode(self.app, self.env)
        self._mount = mount
        self._proxies = TrustedProxies.parse(forwarded_allow_ips)  # a bad entry fails here
        self.graceful_timeout = graceful_timeout
        self.handle_signals = handle_signals
        self._binds = [bind] if isinstance(bind, str) else list(bind)
        self._http_binds = [http] if isinstance(http, str) else list(http)
        self._listeners = list(listeners)
        self._http_listeners = list(http_listeners)
        self._threads = threads
        self._backlog = backlog
        self._max_requests = max_requests
        self._on_retire = on_retire
        self._ops_config = ops
        self._ops_block, self._ops_slot = ops_block, ops_slot
        self._ops: OpsHandler | None = None
        self._handler: Any = None  # ApplicationHandler, WSGIHandler or ASGIHandler
        self._server: Server | None = None
        self._front: Any = None  # smisk.runtime.devhttp.DevHTTPFrontEnd, imported only when used
        self._stopping: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None
        self._close_timeout: float | None = None
        self._signals: list[signal.Signals] = []

    # -- public ------------------------------------------------------------------------------

    @property
    def addresses(self) -> list[Address]:
        """The FastCGI addresses being served (empty before ``start()``)."""
        return self._server.addresses if self._server is not None else []

    @property
    def http_addresses(self) -> list[Address]:
        """The development HTTP front end's addresses (``http=``), if any."""
        return self._front.addresses if self._front is not None else []

    @property
    def ops(self) -> OpsHandler | None:
        """The operations handler (``ops=``), once started; None when nothing was asked."""
        return self._ops

    @property
    def server(self) -> Server:
        """The underlying ``smisk.server.Server`` (for its ``stats``)."""
        if self._server is None:
            raise RuntimeError("the server has not been started")
        return self._server

    async def start(self) -> EmbeddedServer:
        """Bind, call ``application_will_start()`` and start accepting; returns self."""
        if self._server is not None:
            raise RuntimeError("the server was already started")
        loop = asyncio.get_running_loop()
        self._stopping, self._closed = asyncio.Event(), asyncio.Event()
        listeners = self._bind_all(self._binds, self._listeners)
        http_listeners = self._bind_all(self._http_binds, self._http_listeners)
        if not listeners and not http_listeners:
            raise ValueError("nothing to serve on: give bind=, listeners= or http=")
        await self._start_handler()
        handler = wrap_handler(
            self._wrap(self._handler),
            self._ops_config,
            pool_owner=self._handler,
            block=self._ops_block,
            slot=self._ops_slot,
        )
        self._server = Server(handler)
        if isinstance(handler, OpsHandler):
            self._ops = handler
            handler.attach(self._server)
        if self.interface == "smisk":
            self.app._stop = lambda: loop.call_soon_threadsafe(self.request_stop)
            self.app.application_will_start()
        await self._server.start(listeners)
        if http_listeners:
            from smisk.runtime.devhttp import DevHTTPFrontEnd

            self._front = DevHTTPFrontEnd(self._server)
            await self._front.start(http_listeners)
        if self.handle_signals:
            self._install_signal_handlers(loop)
        return self

    def request_stop(self, timeout: float | None = None) -> None:
        """Ask ``wait_stopped()``'s caller to close (safe from signal handlers and ``exit()``);
        ``timeout`` overrides the graceful timeout (0: immediate)."""
        if timeout is not None:
            self._close_timeout = timeout
        if self._stopping is not None:
            self._stopping.set()

    async def wait_stopped(self) -> None:
        """Wait until ``request_stop()`` (a signal, ``app.exit()``, ``--max-requests``)."""
        if self._stopping is None:
            raise RuntimeError("the server has not been started")
        await self._stopping.wait()

    async def close(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``timeout`` (default: the
        graceful timeout), close connections, release handler threads, then call
        ``application_did_stop()``."""
        if self._server is None or self._closed is None or self._closed.is_set():
            return
        self._closed.set()
        if timeout is None:
            timeout = self._close_timeout
        if timeout is None:
            timeout = self.graceful_timeout
        self._remove_signal_handlers()
        if self._front is not None:
            await self._front.close()
        await self._server.close(timeout, linger=DRAIN_LINGER if timeout > 0 else 0.0)
        if self.interface == "asgi":
            await stop_handler(self._handler)  # lifespan shutdown
        await self._release_threads(wait=timeout > 0)
        if self._ops is not None:
            await self._ops.aclose()
        if self.interface == "smisk":
            self.app._stop = None
            self.app.application_did_stop()

    async def serve_forever(self) -> None:
        """Start if needed, wait for a stop request, then close."""
        if self._server is None:
            await self.start()
        try:
            await self.wait_stopped()
        finally:
            await self.close()

    async def __aenter__(self) -> EmbeddedServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- internals ---------------------------------------------------------------------------

    async def _start_handler(self) -> None:
        """The interface's handler; an ASGI app's lifespan startup runs (and may refuse) here."""
        if self.interface == "smisk":
            self._handler = ApplicationHandler(
                self.app, self._threads, forwarded_allow_ips=self._proxies
            )
            return
        self._handler = make_handler(
            self.app,
            self.interface,
            threads=self._threads,
            mount=self._mount,
            forwarded_allow_ips=self._proxies,
        )
        await start_handler(self._handler)

    def _bind_all(self, binds: list[str], given: list[Listener]) -> list[Listener]:
        listeners = list(given)
        try:
            for address in binds:
                listeners.append(bind_listener(address, self._backlog))
        except BaseException:
            for listener in listeners[len(given) :]:
                listener.close()
            raise
        return listeners

    def _wrap(self, handler: Any) -> Any:
        if self._max_requests <= 0:
            return handler
        return _CountingHandler(handler, self._max_requests, self._retire)

    def _retire(self) -> None:
        log.info("served %d requests (--max-requests); recycling", self._max_requests)
        if self._on_retire is not None:
            self._on_retire()
        self.request_stop()

    async def _release_threads(self, wait: bool) -> None:
        handler = self._handler
        if handler is None or getattr(handler, "executor", None) is None:
            return
        if wait:
            await asyncio.get_running_loop().run_in_executor(None, handler.close)
        else:
            handler.executor.shutdown(wait=False, cancel_pending=True)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
            self._signals.append(signum)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()


def serve(app: Any, bind: str | Sequence[str] = (), **options: Any) -> EmbeddedServer:
    """Serve ``app`` (an Application, its class or a factory) on ``bind`` on the running loop.

    ``async with smisk.serve(app, bind="127.0.0.1:0") as server: ...`` — options are those of
    ``EmbeddedServer``: ``threads``, ``backlog``, ``graceful_timeout``, ``http`` (a development
    HTTP front end), ``handle_signals`` (SIGTERM/SIGINT request a stop; off by default),
    ``mount`` (the WSGI SCRIPT_NAME / ASGI root_path prefix), ``forwarded_allow_ips`` (proxies
    whose X-Forwarded-Proto/-For are believed: addresses, networks or ``"*"``), ``ops``
    (an ``smisk.runtime.ops.OpsConfig``: access log, status path, slow log, timeouts, load shedding),
    ``env`` (``"production"``: error pages show only the status; ``"development"``: tracebacks;
    None, the default: the application's own ``show_traceback``).
    """
    return EmbeddedServer(app, bind, **options)
