"""ASGI 3: runs an ASGI application (``http`` and ``lifespan`` scopes) on ``smisk.server.Server``.

Rules: everything runs on the event loop. Each request's application call runs in its own task,
so a disconnect reaches the application as ``http.disconnect`` (and a failing ``send``) before
it is cancelled. Bodies are streamed both ways: ``receive`` reads the flow-controlled input in
chunks, ``send`` with ``more_body`` waits for the transport to drain. A small response (head
and one body message) goes out with END_REQUEST in one call. A lifespan startup failure raises
from ``startup()``, so a server that awaits it never starts serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from smisk.core.frontend import (
    NO_PROXIES,
    TrustedProxies,
    client_address,
    merge_params,
    mount_prefix,
    request_host,
    split_path,
    url_scheme,
)
from smisk.core.headers import check_header, check_status

if TYPE_CHECKING:
    from smisk.server import RequestCycle

__all__ = ["ASGIApp", "ASGIHandler", "LifespanFailure", "build_scope"]

log = logging.getLogger("smisk.asgi")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
RECEIVE_CHUNK = 64 * 1024  # most body bytes one http.request message carries
END_INLINE_LIMIT = 64 * 1024  # a final body up to this size goes out with END_REQUEST at once
DISCONNECT_GRACE = 2.0  # seconds an app gets to return after http.disconnect before cancelling
SHUTDOWN_TIMEOUT = 30.0  # seconds the lifespan task gets to return after shutdown completes
FAILED_STARTUP_GRACE = 1.0  # seconds a failed lifespan call gets to return before cancelling

_ERROR_500 = (
    b"Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 22\r\n\r\nInternal Server Error\n"
)
_LIFESPAN_REPLIES = frozenset(
    (
        "lifespan.startup.complete",
        "lifespan.startup.failed",
        "lifespan.shutdown.complete",
        "lifespan.shutdown.failed",
    )
)
_SKIPPED_HEADERS = (b"HTTP_CONTENT_TYPE", b"HTTP_CONTENT_LENGTH")  # CONTENT_* are the real ones


class LifespanFailure(RuntimeError):
    """The application reported (or raised) a lifespan startup failure: do not serve."""


# -- the scope ----------------------------------------------------------------------------------


_HEADER_NAMES: dict[bytes, bytes] = {}  # HTTP_USER_AGENT -> user-agent, for names seen before
_HEADER_NAMES_MAX = 512  # bounds the cache a client inventing header names could fill


def _header_name(param: bytes) -> bytes:
    name = _HEADER_NAMES.get(param)
    if name is None:
        name = param[5:].replace(b"_", b"-").lower()
        if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
            _HEADER_NAMES[param] = name
    return name


def _headers(env: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    headers = [
        (_header_name(name), value)
        for name, value in env.items()
        if name[:5] == b"HTTP_" and name not in _SKIPPED_HEADERS
    ]
    for name, header in (
        (b"CONTENT_TYPE", b"content-type"),
        (b"CONTENT_LENGTH", b"content-length"),
    ):
        if env.get(name):
            headers.append((header, env[name]))
    return headers


def _address(host: bytes, port: bytes) -> tuple[str, int] | None:
    if not host or not port.isdigit():
        return None  # e.g. a unix socket: the spec's "None" for an unknown address
    return host.decode("latin-1"), int(port)


def _http_version(protocol: bytes) -> str:
    version = protocol.partition(b"/")[2].decode("latin-1") or "1.1"
    return "2" if version == "2.0" else version


def build_scope(
    params: list[tuple[bytes, bytes]],
    root_path: str = "",
    trusted: TrustedProxies = NO_PROXIES,
) -> dict[str, Any]:
    """The ASGI ``http`` scope for a request's FastCGI params.

    Params are normalised as for WSGI (see ``smisk.core.frontend``); ``path`` is the whole decoded
    path (``root_path`` included, as the spec says), ``raw_path`` the path as the client sent it.
    Behind a ``trusted`` proxy, X-Forwarded-Proto sets ``scheme`` and X-Forwarded-For ``client``.
    The ``host`` header gets the front end's port when it came without one (``request_host``).
    """
    env = merge_params(params)
    if host := request_host(env, trusted):
        env[b"HTTP_HOST"] = host
    script, path_info, raw_path = split_path(env, mount_prefix(root_path))
    query = env.get(b"QUERY_STRING")
    if query is None:
        query = env.get(b"REQUEST_URI", b"").partition(b"?")[2]
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": _http_version(env.get(b"SERVER_PROTOCOL", b"")),
        "method": env.get(b"REQUEST_METHOD", b"GET").decode("latin-1").upper(),
        "scheme": url_scheme(env, trusted),
        "path": (script + path_info).decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": script.decode("utf-8", "replace"),
        "headers": _headers(env),
        "client": _address(*client_address(env, trusted)),
        "server": _address(
            env.get(b"SERVER_ADDR") or env.get(b"SERVER_NAME", b""), env.get(b"SERVER_PORT", b"")
        ),
    }


_STATUS_LINES = {int(s): f"Status: {int(s)} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus}


def _head_bytes(message: Message) -> bytes:
    status = int(message["status"])
    check_status(status)  # raised to the application's send(), as a bad header is
    parts = [_STATUS_LINES.get(status) or f"Status: {status} Unknown\r\n".encode("latin-1")]
    for name, value in message.get("headers", ()):
        if not isinstance(name, bytes | bytearray) or not isinstance(value, bytes | bytearray):
            raise TypeError(f"ASGI header names and values must be bytes: {name!r}: {value!r}")
        check_header(name, value)  # raised to the application's send(): nothing goes out
        parts += (bytes(name), b": ", bytes(value), b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


# -- one request --------------------------------------------------------------------------------


class _HTTPExchange:
    """One request: the ``receive`` and ``send`` callables the application gets."""

    def __init__(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        self.head: bytes | None = None  # the response head, held until the first body message
        self.started = False
        self.complete = False
        self.body_done = False
        self.disconnected = False
        self._finished: asyncio.Event | None = None  # made when receive() has to wait on it
        self._grace: asyncio.TimerHandle | None = None

    @property
    def finished(self) -> asyncio.Event:
        """Set once the response is complete or the client is gone: receive() returns then."""
        if self._finished is None:
            self._finished = asyncio.Event()
            if self.complete or self.disconnected:
                self._finished.set()
        return self._finished

    def disconnect(self) -> None:
        """The client went away: receive() returns http.disconnect from now on."""
        self.disconnected = True
        if self._finished is not None:
            self._finished.set()

    def aborted(self) -> None:
        """The request was aborted or its connection closed: tell the application, and cancel
        it if it has not returned within ``DISCONNECT_GRACE`` seconds."""
        self.disconnect()
        task = self.cycle.task
        if task is not None and not task.done():
            self._grace = task.get_loop().call_later(DISCONNECT_GRACE, task.cancel)

    def settled(self) -> None:
        """The application returned: no cancellation is pending for it any more."""
        if self._grace is not None:
            self._grace.cancel()

    async def receive(self) -> Message:
        if not self.body_done and not self.disconnected:
            try:
                chunk = await self.cycle.body.read(RECEIVE_CHUNK)
            except ConnectionError:
                self.disconnect()
            else:
                self.body_done = not chunk or self.cycle.body.at_eof
                return {"type": "http.request", "body": chunk, "more_body": not self.body_done}
        await self.finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.disconnected or (not self.cycle.is_active and not self.complete):
            raise ConnectionError("the client went away")
        if kind == "http.response.start" and not self.started:
            self.head = _head_bytes(message)
            self.started = True
        elif kind == "http.response.body" and self.started and not self.complete:
            await self._send_body(bytes(message.get("body", b"")), message.get("more_body", False))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} at this point of the response")

    async def _send_body(self, body: bytes, more: bool) -> None:
        if self.head is not None:
            body, self.head = self.head + body, None
        if more:
            if body:
                await self.cycle.write(body)
            return
        self.complete = True
        if self._finished is not None:
            self._finished.set()
        if len(body) > END_INLINE_LIMIT:
            await self.cycle.write(body)
            body = b""
        self.cycle.end(body)

    async def run(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        """Call the application; answer 500 if it failed before the response started."""
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            self._failed()
            return
        if not self.started and self.cycle.is_active:
            log.error("ASGI application returned without starting a response")
            self.cycle.end(_ERROR_500)
        elif not self.complete and self.cycle.is_active:
            log.error("ASGI application returned without completing its response")

    def _failed(self) -> None:
        if self.disconnected or not self.cycle.is_active:
            log.debug("client went away during an ASGI request", exc_info=True)
        elif self.started:
            log.exception("error in ASGI application after the response began")
        else:
            log.exception("error in ASGI application")
            self.cycle.end(_ERROR_500)


# -- lifespan -----------------------------------------------------------------------------------


class _Lifespan:
    """The ``lifespan`` scope: one long-lived application call driven by startup/shutdown."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], required: bool) -> None:
        self.app = app
        self.state = state
        self.required = required
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue()  # None: the call ended
        self.listening = False  # the application called receive(): it speaks lifespan
        self.supported = False
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def _receive(self) -> Message:
        self.listening = True
        return await self.inbox.get()

    async def _send(self, message: Message) -> None:
        if message["type"] not in _LIFESPAN_REPLIES:
            raise RuntimeError(f"unexpected ASGI message {message['type']!r} in the lifespan scope")
        await self.outbox.put(message)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as error:
            self.error = error
        finally:
            self.outbox.put_nowait(None)

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._main())
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self.outbox.get()
        if reply is not None and reply["type"] == "lifespan.startup.complete":
            self.supported = True
            return
        if reply is None and not self.listening and not self.required:
            log.info("the ASGI application does not support lifespan: %r", self.error)
            return
        await self._stop(FAILED_STARTUP_GRACE)
        message = reply.get("message", "") if reply is not None else repr(self.error)
        raise LifespanFailure(f"ASGI lifespan startup failed: {message}") from self.error

    async def _stop(self, timeout: float) -> None:
        """Wait for the lifespan call to return; cancel it if it does not in time."""
        assert self.task is not None
        done, _ = await asyncio.wait([self.task], timeout=timeout)
        if not done:
            self.task.cancel()
            await asyncio.wait([self.task])

    async def shutdown(self) -> None:
        if not self.supported or self.task is None:
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        reply = await self.outbox.get()
        if reply is None or reply["type"] != "lifespan.shutdown.complete":
            detail = reply.get("message", "") if reply is not None else repr(self.error)
            log.error("ASGI lifespan shutdown failed: %s", detail)
        await self._stop(SHUTDOWN_TIMEOUT)


# -- the handler --------------------------------------------------------------------------------


class ASGIHandler:
    """Serves an ASGI 3 application on ``smisk.server.Server``: ``Server(ASGIHandler(app))``.

    Await ``startup()`` before the server starts and ``shutdown()`` after it closed.
    ``lifespan``: ``"auto"`` (use it if the application speaks it), ``"on"`` (it must) or
    ``"off"``. ``root_path`` is the mount prefix, which overrides the front end's split;
    ``forwarded_allow_ips`` names the proxies whose X-Forwarded-Proto/-For are believed
    (addresses or networks, ``"*"`` for all; see ``smisk.core.frontend.TrustedProxies``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        lifespan: str = "auto",
        forwarded_allow_ips: str | Sequence[str] | TrustedProxies = (),
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        self.app = app
        self.root_path = root_path
        self.proxies = TrustedProxies.parse(forwarded_allow_ips)
        self.state: dict[str, Any] = {}
        self._lifespan = _Lifespan(app, self.state, required=lifespan == "on")
        self._lifespan_mode = lifespan

    async def startup(self) -> None:
        """Run the lifespan startup; raises ``LifespanFailure`` if the application failed it."""
        if self._lifespan_mode != "off":
            await self._lifespan.startup()

    async def shutdown(self) -> None:
        """Run the lifespan shutdown (failures are logged)."""
        await self._lifespan.shutdown()

    async def __call__(self, cycle: RequestCycle) -> None:
        scope = build_scope(cycle.params, self.root_path, self.proxies)
        if self._lifespan.supported:
            scope["state"] = dict(self.state)
        exchange = _HTTPExchange(cycle)
        cycle.on_abort = exchange.aborted  # http.disconnect first, cancellation after a grace
        try:
            await exchange.run(self.app, scope)
        finally:
            exchange.settled()
