"""Server lifecycle: graceful close, its deadline, idle keep-alive timeout, embedding on a loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from smisk.server import Server, bind_listener
from tests.server.conftest import Connect
from tests.support import handlers
from tests.support.fcgi_client import FastCGIClient, request_bytes
from tests.support.serving import ServerThread, wait_until


def uri(path: str) -> dict[str, str]:
    return {"REQUEST_URI": path}


def open_gate(served: ServerThread, key: str) -> None:
    """Let /hold?key= requests on ``served`` answer (like a /release request, from outside)."""
    served.loop.call_soon_threadsafe(lambda: handlers._gate(key).set())


def start_close(served: ServerThread, timeout: float) -> Future[None]:
    return asyncio.run_coroutine_threadsafe(served.server.close(timeout), served.loop)


def test_graceful_close(server: ServerThread, connect: Connect) -> None:
    served = server
    address = served.addresses[0]
    busy = connect()
    busy.send(request_bytes(1, uri("/hold?key=graceful")))
    wait_until(lambda: "holding graceful" in handlers.EVENTS, what="request in flight")
    idle = connect()
    assert idle.request(params=uri("/hello")).done

    closing = start_close(served, timeout=10)
    assert idle.at_eof()  # idle keep-alive connections are closed at once
    with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
        FastCGIClient(address, timeout=2)  # no new connections
    assert not closing.done()  # ... while the in-flight request still runs

    open_gate(served, "graceful")
    assert busy.read_response(1).split()[1] == b"released graceful"
    assert busy.at_eof(skip_management=True)  # closed once its last request ended
    busy.close()  # as a web server does on seeing the end of the stream
    closing.result(2)
    assert served.server.connections == set()
    assert served.server.tasks == set()


def test_graceful_close_deadline_drops_stragglers(server: ServerThread, connect: Connect) -> None:
    served = server
    stuck = connect()
    stuck.send(request_bytes(1, uri("/wait-abort")))
    assert stuck.read_record() is not None
    started = time.monotonic()
    start_close(served, timeout=0.3).result(10)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3
    assert stuck.at_eof()
    assert handlers.EVENTS == ["aborted 1"]  # the handler was cancelled, not leaked
    assert served.server.tasks == set()


def test_close_with_nothing_in_flight_is_quick(make_server: Callable[..., ServerThread]) -> None:
    served = make_server()
    started = time.monotonic()
    start_close(served, timeout=30).result(10)
    assert time.monotonic() - started < 1


def test_idle_timeout_closes_idle_connections(
    make_server: Callable[..., ServerThread], connect: Connect
) -> None:
    served = make_server(idle_timeout=0.3)
    client = connect(served.addresses[0], timeout=5)
    assert client.request(params=uri("/hello")).done
    started = time.monotonic()
    assert client.at_eof()
    assert 0.1 <= time.monotonic() - started < 3
    assert served.server.connections == set()


def test_idle_timeout_spares_busy_connections(
    make_server: Callable[..., ServerThread], connect: Connect
) -> None:
    served = make_server(idle_timeout=0.2)
    client = connect(served.addresses[0], timeout=5)
    # The request takes several idle timeouts; the connection is busy, not idle.
    assert client.request(params=uri("/sleep?s=0.7")).split()[1] == b"slept"
    # Idle time counts from the end of the last request: the connection is still usable.
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


async def test_embedded_on_a_running_loop(sockdir: object) -> None:
    """An asyncio program awaits the server on its own loop, without smisk-serve."""
    async with Server(handlers.router) as server:
        await server.start([bind_listener("127.0.0.1:0")])
        address = server.addresses[0]

        def fetch() -> bytes:
            with FastCGIClient((address.host, address.port)) as client:
                return client.request(params=uri("/hello")).split()[1]

        assert await asyncio.to_thread(fetch) == b"Hello World!"
    assert server.connections == set()
