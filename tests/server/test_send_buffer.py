"""The send buffer of accepted connections (ServerLimits.send_buffer, SMISK_SEND_BUFFER)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from smisk.server import Server, bind_listener
from smisk.server.limits import ServerLimits
from tests.server.conftest import Connect
from tests.support import handlers
from tests.support.fcgi_client import FastCGIClient, request_bytes
from tests.support.serving import ServerThread

KIB = 1024


def wmem_max() -> int:
    return int(Path("/proc/sys/net/core/wmem_max").read_text())


def kernel_default(family: socket.AddressFamily) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as fresh:
        return fresh.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def server_side_sndbuf(served: ServerThread) -> int:
    async def read() -> int:
        (protocol,) = served.server.connections
        assert protocol.transport is not None
        sock = protocol.transport.get_extra_info("socket")
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

    return int(served.call(read()))


def test_small_responses_leave_the_kernel_default(
    make_server: Callable[..., ServerThread], connect: Connect, transport_kind: str
) -> None:
    served = make_server(server_limits=ServerLimits(send_buffer=300 * KIB))
    client: FastCGIClient = connect(served.addresses[0])
    for _ in range(3):
        assert client.request(params={"REQUEST_URI": "/big?n=20000"}).done
    actual = server_side_sndbuf(served)
    if transport_kind == "unix":
        assert actual == kernel_default(socket.AF_UNIX)
    else:  # TCP autotunes its buffer: only check the option was not set
        assert actual != 2 * min(300 * KIB, wmem_max())


@pytest.mark.parametrize("size", [0, 96 * KIB, 300 * KIB])
def test_unix_connections_get_the_send_buffer_with_the_first_large_response(
    make_server: Callable[..., ServerThread], connect: Connect, transport_kind: str, size: int
) -> None:
    served = make_server(server_limits=ServerLimits(send_buffer=size))
    client: FastCGIClient = connect(served.addresses[0])
    response = client.request(params={"REQUEST_URI": "/big?n=200000"})
    assert response.done
    assert len(response.split()[1]) == 200000
    actual = server_side_sndbuf(served)
    if transport_kind == "unix" and size:
        assert actual == 2 * min(size, wmem_max())  # Linux doubles it for its bookkeeping
    elif transport_kind == "unix":
        assert actual == kernel_default(socket.AF_UNIX)
    else:  # TCP keeps the kernel's autotuning: the option is never set
        assert actual != 2 * min(size, wmem_max()) or size == 0


def test_send_buffer_from_the_environment() -> None:
    assert ServerLimits.from_environ({"SMISK_SEND_BUFFER": "65536"}).send_buffer == 65536
    assert ServerLimits().send_buffer == 1024 * 1024
    with pytest.raises(ValueError, match="SMISK_SEND_BUFFER"):
        ServerLimits.from_environ({"SMISK_SEND_BUFFER": "lots"})


def test_send_buffer_on_uvloop_transports(sockdir: Path) -> None:
    async def run() -> int:
        server = Server(handlers.router, server_limits=ServerLimits(send_buffer=128 * KIB))
        path = str(sockdir / "uv.sock")
        await server.start([bind_listener(path)])
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(request_bytes(1, {"REQUEST_URI": "/big?n=100000"}))
            await reader.readexactly(100000)
            (protocol,) = server.connections
            assert protocol.transport is not None
            sock = protocol.transport.get_extra_info("socket")
            writer.close()
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        finally:
            await server.close(1)

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(run()) == 2 * min(128 * KIB, wmem_max())
    finally:
        loop.close()
