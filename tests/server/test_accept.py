"""Taking a burst of waiting connections off the backlog at once (smisk.server.accept)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from smisk.server import RequestCycle, Server, bind_listener
from smisk.server.accept import ACCEPT_BATCH, accept_waiting, start_transport
from tests.support.fcgi_client import request_bytes

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def waiting_clients(path: str, count: int) -> list[socket.socket]:
    """``count`` connections left in the backlog of ``path``, each with one request sent."""
    clients = []
    for _ in range(count):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.sendall(request_bytes(1, {"REQUEST_URI": "/"}, keep_conn=False))
        client.setblocking(False)
        clients.append(client)
    return clients


async def read_to_close(client: socket.socket) -> bytes:
    loop, data = asyncio.get_running_loop(), b""
    while chunk := await loop.sock_recv(client, 65536):
        data += chunk
    client.close()
    return data


def serve_burst(path: str, count: int, loop_name: str, **options: int) -> tuple[list[int], Server]:
    """Queue ``count`` requests, start a server, answer all; returns how many connections were
    open when each request was handled, and the server."""
    seen: list[int] = []
    server: Server

    async def handler(cycle: RequestCycle) -> None:
        seen.append(len(server.connections))
        cycle.end(b"Content-Type: text/plain\r\n\r\nok")

    async def run() -> None:
        nonlocal server
        server = Server(handler, **options)
        listener = bind_listener(path)
        clients = waiting_clients(path, count)
        await server.start([listener])
        try:
            replies = await asyncio.wait_for(asyncio.gather(*map(read_to_close, clients)), 30)
        finally:
            await server.close(5)
        assert all(reply.count(b"ok") == 1 for reply in replies)

    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return seen, server


def test_accept_waiting_takes_what_waits_up_to_the_limit(sockdir: Path) -> None:
    listener = bind_listener(str(sockdir / "a.sock"))
    clients = waiting_clients(str(sockdir / "a.sock"), 5)
    taken: list[socket.socket] = []
    try:
        assert accept_waiting(listener.socket, taken.append, limit=3) == 3
        assert accept_waiting(listener.socket, taken.append) == 2
        assert accept_waiting(listener.socket, taken.append) == 0  # empty: one failed accept
        assert len(taken) == 5 and not any(conn.getblocking() for conn in taken)
    finally:
        for sock in taken + clients:
            sock.close()
        listener.close()


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_burst_in_the_backlog_is_accepted_before_its_first_request_runs(
    sockdir: Path, loop_name: str
) -> None:
    # uvloop on its own takes one connection per loop iteration: the first request would run
    # with a handful connected and the rest of the burst still waiting in the backlog.
    seen, server = serve_burst(str(sockdir / "b.sock"), ACCEPT_BATCH, loop_name)
    assert len(seen) == ACCEPT_BATCH and seen[0] == ACCEPT_BATCH
    assert server.stats.accepted_connections == ACCEPT_BATCH


def test_a_burst_beyond_max_connections_waits_instead_of_being_refused(sockdir: Path) -> None:
    # uvloop only: asyncio's own server accepts a whole backlog before any connection is made.
    seen, server = serve_burst(str(sockdir / "c.sock"), 30, "uvloop", max_connections=10)
    assert len(seen) == 30 and max(seen) <= 10
    assert server.stats.refused_connections == 0 and server.stats.accept_pauses >= 1


def test_a_socket_whose_peer_left_is_closed_without_a_protocol(sockdir: Path) -> None:
    made: list[asyncio.BaseTransport] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        start_transport(loop, Recorder, ours)
        await asyncio.sleep(0)  # connection_made is scheduled, not called in place
        assert len(made) == 1
        made[0].close()
        theirs.close()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
