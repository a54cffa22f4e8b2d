"""A plain ``def service()`` served without a task: the loop hands the request to a handler
thread and the thread's outcome ends it. Each request keeps its own context; END_REQUEST follows
every byte the thread wrote; max_requests, graceful close and aborts count these requests as
they count tasks; a failing service gives a 500 and the next request is served. Over a unix
socket, on asyncio's loop and on uvloop (which runs the loop's I/O and its queued callbacks in a
different order)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

import smisk
from smisk.core import Application
from smisk.protocol.records import encode_record
from smisk.runtime.handler import ApplicationHandler
from smisk.server.limits import ServerLimits
from smisk.server.threads import HandlerThreads
from tests.support.fcgi_client import ABORT, FastCGIClient, request_bytes
from tests.support.serving import HandlerGate, ServerThread, wait_until

REQUEST_COMPLETE = 0
CHUNK = 64 * 1024
CHUNKS = 48  # 3 MiB: flushed while the service runs, partly posted to the loop without waiting

seen_by_request: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="fresh")


class SyncApp(Application):
    gate = HandlerGate()

    def service(self) -> None:
        route = self.request.env["REQUEST_URI"]
        self.response.headers = ["Content-Type: text/plain"]
        if route == "/block":
            self.gate.entered.release()
            assert self.gate.release.wait(30)
            self.response("unblocked")
        elif route.startswith("/context/"):
            before = seen_by_request.get()
            seen_by_request.set(route)
            self.response(f"{before} {self.request.env['REQUEST_URI']}")
        elif route == "/large":
            for index in range(CHUNKS):
                self.response.write(bytes([65 + index % 26]) * CHUNK)
                self.response.flush()
        elif route == "/fail":
            raise ValueError("service failed")
        else:
            self.response("hello")


@pytest.fixture(params=["asyncio", "uvloop"])
def served(
    request: pytest.FixtureRequest, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ServerThread]]:
    """Start a server for a SyncApp (``limits`` optional) on the parametrised loop."""
    started: list[tuple[ServerThread, ApplicationHandler]] = []

    def start(limits: ServerLimits | None = None) -> ServerThread:
        app = SyncApp()
        SyncApp.gate = HandlerGate()
        handler = ApplicationHandler(app, threads=4)
        with monkeypatch.context() as patch:
            if request.param == "uvloop":
                patch.setattr(asyncio, "new_event_loop", uvloop.new_event_loop)
            server = ServerThread(
                handler, [str(sockdir / f"sync{len(started)}.sock")], server_limits=limits
            )
        started.append((server.__enter__(), handler))
        return server

    yield start
    SyncApp.gate.release.set()
    for server, handler in reversed(started):
        server.__exit__(None, None, None)
        handler.close()


def get(client: FastCGIClient, route: str, request_id: int = 1) -> tuple[dict[str, str], bytes]:
    return client.request(request_id, params={"REQUEST_URI": route}).split()


def test_a_sync_request_in_flight_has_no_task_and_counts_as_direct(
    served: Callable[..., ServerThread],
) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        client.send(request_bytes(1, {"REQUEST_URI": "/block"}))
        SyncApp.gate.wait_entered()
        assert len(server.server.direct) == 1 and not server.server.tasks
        SyncApp.gate.release.set()
        assert client.read_response(1).split()[1] == b"unblocked"
    wait_until(lambda: not server.server.direct, what="the request counted as finished")
    assert server.server.stats.requests_finished == server.server.stats.requests_started == 1


def test_each_request_runs_in_its_own_context(served: Callable[..., ServerThread]) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        for index in range(20):  # the same threads serve them, one after another
            assert get(client, f"/context/{index}")[1] == f"fresh /context/{index}".encode()


def test_end_request_follows_all_output_the_thread_wrote(
    served: Callable[..., ServerThread],
) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        for _ in range(3):
            response = client.request(params={"REQUEST_URI": "/large"})
            assert response.protocol_status == REQUEST_COMPLETE
            body = response.split()[1]
            expected = b"".join(bytes([65 + i % 26]) * CHUNK for i in range(CHUNKS))
            assert len(body) == len(expected) and body == expected


def test_max_requests_counts_sync_requests_in_flight(served: Callable[..., ServerThread]) -> None:
    server = served(ServerLimits(max_requests=1))
    with FastCGIClient(server.addresses[0]) as client:
        client.send(request_bytes(1, {"REQUEST_URI": "/block"}))
        SyncApp.gate.wait_entered()
        head, _ = get(client, "/hello", 2)
        assert head["status"].startswith("503")
        SyncApp.gate.release.set()
        assert client.read_response(1).split()[1] == b"unblocked"
        wait_until(lambda: not server.server.direct, what="the first request finished")
        assert get(client, "/hello", 3)[1] == b"hello"


def test_graceful_close_waits_for_a_running_sync_service(
    served: Callable[..., ServerThread],
) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        client.send(request_bytes(1, {"REQUEST_URI": "/block"}))
        SyncApp.gate.wait_entered()
        closing = asyncio.run_coroutine_threadsafe(server.server.close(30), server.loop)
        wait_until(lambda: server.server._closing, what="close started")
        assert not closing.done() and server.server.direct
        SyncApp.gate.release.set()
        response = client.read_response(1)
        assert (response.protocol_status, response.split()[1]) == (REQUEST_COMPLETE, b"unblocked")
        closing.result(30)
    assert not server.server.direct and server.server.stats.requests_finished == 1


def test_close_after_its_timeout_still_waits_for_the_thread(
    served: Callable[..., ServerThread],
) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        client.send(request_bytes(1, {"REQUEST_URI": "/block"}))
        SyncApp.gate.wait_entered()
        closing = asyncio.run_coroutine_threadsafe(server.server.close(0.01), server.loop)
        wait_until(lambda: not server.server.connections, what="the connection dropped")
        assert not closing.done()  # the handler thread cannot be stopped: it is waited for
        SyncApp.gate.release.set()
        closing.result(30)
    assert not server.server.direct


def test_an_aborted_sync_request_ends_after_its_thread_without_its_output(
    served: Callable[..., ServerThread],
) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        client.send(request_bytes(1, {"REQUEST_URI": "/block"}))
        SyncApp.gate.wait_entered()
        client.send(encode_record(ABORT, 1))
        SyncApp.gate.release.set()
        response = client.read_response(1)
        assert response.protocol_status == REQUEST_COMPLETE and response.stdout == b""
        assert get(client, "/hello", 2)[1] == b"hello"


def test_a_failing_service_gives_a_500_and_the_server_keeps_serving(
    served: Callable[..., ServerThread],
) -> None:
    server = served()
    with FastCGIClient(server.addresses[0]) as client:
        head, _ = get(client, "/fail")
        assert head["status"].startswith("500")
        assert get(client, "/hello", 2)[1] == b"hello"


def test_threads_shut_down_give_a_500_and_the_server_keeps_running(
    served: Callable[..., ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    server = served()
    handler: Any = server.server.handler
    executor: HandlerThreads = handler.executor
    executor.shutdown()
    with FastCGIClient(server.addresses[0]) as client:
        for request_id in (1, 2):
            head, body = get(client, "/hello", request_id)
            assert head["status"].startswith("500") and body == b"Internal Server Error\n"
    assert "unhandled error in request handler" in caplog.text
    assert not server.server.direct


async def test_max_requests_counts_sync_requests_served_without_tasks(sockdir: Path) -> None:
    retired: list[int] = []
    sock = sockdir / "retire.sock"

    def get_once() -> bytes:
        with FastCGIClient(str(sock)) as client:
            return get(client, "/hello")[1]

    async with smisk.serve(
        SyncApp(), bind=f"unix:{sock}", max_requests=2, on_retire=lambda: retired.append(1)
    ) as embedded:
        assert embedded.server._serve_direct is not None
        assert await asyncio.to_thread(get_once) == b"hello"
        assert not retired
        assert await asyncio.to_thread(get_once) == b"hello"
        assert retired == [1]
