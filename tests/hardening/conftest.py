"""Fixtures for the hardening suite: servers in a thread with chosen limits, short socket dirs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smisk.limits import ServerLimits
from tests.support import handlers
from tests.support.serving import ServerThread

MakeServer = Callable[..., ServerThread]


@pytest.fixture(autouse=True)
def _clean_handler_events() -> Iterator[None]:
    handlers.EVENTS.clear()
    yield
    handlers.EVENTS.clear()
    handlers.reset_gates()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (tmp_path can exceed the 108-byte sun_path limit)."""
    path = Path(tempfile.mkdtemp(prefix="smisk-h-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
