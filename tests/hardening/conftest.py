"""Fixtures for the hardening suite: servers in a thread with chosen limits, short socket dirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smisk.server.limits import ServerLimits
from tests.support import handlers
from tests.support.serving import ServerThread

MakeServer = Callable[..., ServerThread]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Start test-handler servers on ``address`` (TCP port 0 by default) with ``limits``
    (a ServerLimits, never read from the environment); all are closed at teardown."""
    started: list[ServerThread] = []

    def make(
        limits: ServerLimits | None = None,
        address: str = "127.0.0.1:0",
        handler: Any = handlers.router,
        **options: Any,
    ) -> ServerThread:
        options["server_limits"] = limits or ServerLimits()
        thread = ServerThread(handler, [address], **options).__enter__()
        started.append(thread)
        return thread

    yield make
    for thread in reversed(started):
        thread.__exit__(None, None, None)
