"""RequestCycle.post: a handler thread hands output over without a round trip while the client
keeps up, and waits (post returns False) once it does not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from smisk.protocol import Role
from smisk.server.cycle import THREAD_WRITE_WINDOW, RequestCycle
from smisk.server.limits import ServerLimits
from smisk.server.streams import ClientGone


class FakeProtocol:
    """What a cycle uses of its connection; the loop runs only when the test says so."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.writing_paused = False
        self.is_closed = False
        self.server = SimpleNamespace(server_limits=ServerLimits())
        self.sent: list[bytes] = []

    def input_consumed(self, n: int) -> None:
        pass

    def send_stdout(self, request_id: int, data: bytes) -> None:
        self.sent.append(bytes(data))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def cycle_on(protocol: FakeProtocol) -> RequestCycle:
    return RequestCycle(protocol, 1, Role.RESPONDER, True, [])  # type: ignore[arg-type]


def run_posted(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_posts_within_the_window_go_through_in_order(loop: Any) -> None:
    protocol = FakeProtocol(loop)
    cycle = cycle_on(protocol)
    first, second = b"a" * (THREAD_WRITE_WINDOW // 2), b"b" * (THREAD_WRITE_WINDOW // 2)
    assert cycle.post(first) and cycle.post(second)
    assert protocol.sent == []  # handed over, not yet taken by the loop
    assert not cycle.post(b"c")  # the window is full: the thread must wait
    run_posted(loop)
    assert protocol.sent == [first, second]
    assert cycle.posted == cycle.taken == THREAD_WRITE_WINDOW
    assert cycle.post(b"c")  # taken: room again
    run_posted(loop)
    assert protocol.sent[-1] == b"c"


def test_a_paused_transport_makes_the_thread_wait(loop: Any) -> None:
    protocol = FakeProtocol(loop)
    cycle = cycle_on(protocol)
    protocol.writing_paused = True
    assert not cycle.post(b"x")
    protocol.writing_paused = False
    assert cycle.post(b"x")


def test_a_single_write_over_the_window_waits(loop: Any) -> None:
    cycle = cycle_on(FakeProtocol(loop))
    assert not cycle.post(b"z" * (THREAD_WRITE_WINDOW + 1))
    assert cycle.posted == 0


def test_posting_after_the_client_left_raises(loop: Any) -> None:
    protocol = FakeProtocol(loop)
    cycle = cycle_on(protocol)
    assert cycle.post(b"early")
    cycle.aborted = True  # the client went away before the loop took the output
    run_posted(loop)
    assert protocol.sent == []  # dropped, not written to a dead request
    with pytest.raises(ClientGone):
        cycle.post(b"late")
