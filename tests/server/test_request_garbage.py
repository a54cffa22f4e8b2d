"""A finished request leaves no reference cycle behind: its objects are freed by reference
counting, not by the cyclic collector (which, with hundreds of requests in flight, finds them
only in its rare full collections: memory grew by half under load)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from smisk.adapters.asgi import ASGIHandler, _HTTPExchange
from smisk.server.cycle import RequestCycle
from tests.support.fcgi_client import FastCGIClient
from tests.support.serving import ServerThread, wait_until

REQUESTS = 20


async def hello_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hi"})  # type: ignore[operator]


async def aborting_handler(cycle: RequestCycle) -> None:
    """A raw handler that registers an abort callback holding the cycle, as adapters do."""
    cycle.on_abort = lambda: cycle.end(b"")
    cycle.end(b"Content-Type: text/plain\r\n\r\nok")


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def live(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


@pytest.mark.parametrize("handler", [ASGIHandler(hello_app, lifespan="off"), aborting_handler])
def test_finished_requests_are_freed_without_the_cyclic_collector(
    tmp_path: Path, no_cyclic_gc: None, handler: object
) -> None:
    path = str(tmp_path / "s.sock")
    with ServerThread(handler, [f"unix:{path}"]) as served:
        before = (live(RequestCycle), live(_HTTPExchange))
        with FastCGIClient(served.addresses[0]) as client:
            for _ in range(REQUESTS):
                assert client.request(params={"REQUEST_URI": "/"}).done
        # END_REQUEST leaves before the server's own bookkeeping of the request ends
        wait_until(lambda: served.server.stats.requests_finished >= REQUESTS, what="all done")
        after = (live(RequestCycle), live(_HTTPExchange))
    assert after == before
