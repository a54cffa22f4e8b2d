"""Accepting servers per listening socket (ServerLimits.acceptors, SMISK_ACCEPTORS, --acceptors).

uvloop takes one connection from a listening socket per loop pass; a burst of new connections
(a web server opening one per request beyond its keep-alive pool) then waits in the backlog for
as many passes as there are connections. Each extra accepting server takes one more per pass.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop

from smisk.server import Server, bind_listener
from smisk.server.limits import AUTO_ACCEPTORS, ServerLimits, accepts_one_per_pass
from tests.support import handlers

BURST = 64


def run_on(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], coro_fn: Callable[[], object]
) -> object:
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro_fn())  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "fcgi.sock")


def test_acceptors_from_the_environment() -> None:
    assert ServerLimits.from_environ({"SMISK_ACCEPTORS": "3"}).acceptors == 3
    assert ServerLimits.from_environ({}).acceptors == 0
    with pytest.raises(ValueError, match="SMISK_ACCEPTORS"):
        ServerLimits.from_environ({"SMISK_ACCEPTORS": "many"})


@pytest.mark.parametrize(
    ("factory", "expected"), [(uvloop.new_event_loop, True), (asyncio.new_event_loop, False)]
)
def test_only_uvloop_accepts_one_connection_per_pass(
    factory: Callable[[], asyncio.AbstractEventLoop], expected: bool
) -> None:
    loop = factory()
    try:
        assert accepts_one_per_pass(loop) is expected
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("factory", "configured", "expected"),
    [
        (uvloop.new_event_loop, 0, AUTO_ACCEPTORS),
        (asyncio.new_event_loop, 0, 1),
        (uvloop.new_event_loop, 3, 3),
        (asyncio.new_event_loop, 2, 2),
    ],
)
def test_servers_per_listening_socket(
    socket_path: str,
    factory: Callable[[], asyncio.AbstractEventLoop],
    configured: int,
    expected: int,
) -> None:
    async def count() -> int:
        server = Server(handlers.router, server_limits=ServerLimits(acceptors=configured))
        await server.start([bind_listener(f"unix:{socket_path}")])
        try:
            return len(server._servers)
        finally:
            await server.close()

    assert run_on(factory, count) == expected


def passes_to_accept_a_burst(socket_path: str, acceptors: int) -> int:
    """Loop passes uvloop needs to accept BURST connections that wait in the backlog."""

    async def measure() -> int:
        server = Server(handlers.router, server_limits=ServerLimits(acceptors=acceptors))
        await server.start([bind_listener(f"unix:{socket_path}", backlog=1024)])
        clients: list[socket.socket] = []
        connected = threading.Event()

        def connect_all() -> None:
            for _ in range(BURST):
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.connect(socket_path)  # completes while the backlog has room
                clients.append(client)
            connected.set()

        thread = threading.Thread(target=connect_all)
        thread.start()
        thread.join()
        assert connected.is_set()
        loop = asyncio.get_running_loop()
        passes = 0
        done = loop.create_future()

        def tick() -> None:  # one call per loop pass
            nonlocal passes
            passes += 1
            if server.stats.accepted_connections >= BURST or passes > 10 * BURST:
                done.set_result(passes)
            else:
                loop.call_soon(tick)

        loop.call_soon(tick)
        try:
            return int(await done)
        finally:
            for client in clients:
                client.close()
            await server.close()

    return int(run_on(uvloop.new_event_loop, measure))  # type: ignore[arg-type]


def test_more_acceptors_take_a_burst_in_fewer_passes(socket_path: str) -> None:
    one = passes_to_accept_a_burst(socket_path, acceptors=1)
    eight = passes_to_accept_a_burst(socket_path, acceptors=8)
    assert one >= BURST - 1  # uvloop: one connection per pass
    assert eight <= BURST // 8 + 4, (one, eight)
