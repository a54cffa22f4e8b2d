"""Fixtures for the server suite: a server on TCP and on a unix socket, and clients to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import handlers
from tests.support.fcgi_client import FastCGIClient
from tests.support.serving import ServerThread

Address = str | tuple[str, int]
Connect = Callable[..., FastCGIClient]


def bind_address(kind: str, sockdir: Path) -> str:
    return "127.0.0.1:0" if kind == "tcp" else str(sockdir / "fcgi.sock")


@pytest.fixture(params=["tcp", "unix"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_server(sockdir: Path, transport_kind: str) -> Iterator[Callable[..., ServerThread]]:
    """Start a ServerThread serving the test handlers (or ``handler``) on the parametrised kind
    of socket; every server started is closed at teardown."""
    started: list[ServerThread] = []

    def make(handler: Any = handlers.router, **options: Any) -> ServerThread:
        name = f"fcgi{len(started)}.sock"
        address = "127.0.0.1:0" if transport_kind == "tcp" else str(sockdir / name)
        thread = ServerThread(handler, [address], **options).__enter__()
        started.append(thread)
        return thread

    yield make
    for thread in reversed(started):
        thread.__exit__(None, None, None)


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


@pytest.fixture
def address(server: ServerThread) -> Address:
    return server.addresses[0]  # type: ignore[no-any-return]


@pytest.fixture
def connect(address: Address) -> Iterator[Connect]:
    """Open clients to the fixture server (or to ``to``); all are closed at teardown."""
    clients: list[FastCGIClient] = []

    def open_client(to: Address | None = None, timeout: float = 10.0) -> FastCGIClient:
        client = FastCGIClient(to if to is not None else address, timeout=timeout)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
