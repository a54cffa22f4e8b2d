"""Fixtures for the WSGI/ASGI suite: a handler served on a unix socket behind a real nginx."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.nginx import NGINX, Nginx
from tests.support.serving import ServerThread

pytestmark = pytest.mark.nginx

Front = Callable[..., tuple[Nginx, ServerThread]]


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (tmp_path can exceed the 108-byte sun_path limit)."""
    path = Path(tempfile.mkdtemp(prefix="smisk-if-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def front(sockdir: Path, tmp_path: Path) -> Iterator[Front]:
    """``front(handler)``: serve ``handler`` in a ServerThread behind a real nginx.

    ASGI handlers get their lifespan startup before nginx starts; everything is stopped at
    teardown (nginx, then the server, then the lifespan shutdown and the handler's threads).
    """
    if shutil.which(NGINX) is None and not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    stack = ExitStack()
    count = 0

    def start(handler: Any, extra: str = "") -> tuple[Nginx, ServerThread]:
        nonlocal count
        count += 1
        if hasattr(handler, "close"):
            stack.callback(handler.close)  # last: after the server stopped
        server = ServerThread(handler, [str(sockdir / f"app{count}.sock")])
        stack.enter_context(server)
        if hasattr(handler, "startup"):
            server.call(handler.startup())
            stack.callback(_shutdown, server, handler)
        nginx = stack.enter_context(Nginx(tmp_path / f"nginx{count}", server.addresses, extra))
        return nginx, server

    with stack:
        yield start


def _shutdown(server: ServerThread, handler: Any) -> None:
    if not server.server._closing:
        server.close()
    server.call(handler.shutdown())
