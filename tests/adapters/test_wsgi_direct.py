"""A WSGI application served without a task (``WSGIHandler.serve_direct``): the loop hands the
request to a handler thread and the thread's outcome ends it. END_REQUEST follows every byte the
application sent (streamed, written, or from a file wrapper); each request keeps its own context;
max_requests, graceful close and aborts count these requests as they count tasks; a failing
application gives a 500 and the next request is served. Over a unix socket, on asyncio's loop
and on uvloop (which runs the loop's I/O and its queued callbacks in a different order)."""

from __future__ import annotations

import asyncio
import contextvars
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from smisk.adapters.wsgi import WSGIHandler
from smisk.protocol.records import encode_record
from smisk.server.limits import ServerLimits
from smisk.server.threads import HandlerThreads
from tests.support.fcgi_client import ABORT, FastCGIClient, request_bytes
from tests.support.serving import HandlerGate, ServerThread, wait_until

REQUEST_COMPLETE = 0
CHUNK = 64 * 1024
CHUNKS = 48  # 3 MiB: several stream windows, partly posted to the loop without waiting
LARGE = b"".join(bytes([65 + index % 26]) * CHUNK for index in range(CHUNKS))

seen_by_request: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="fresh")


def make_app(gate: HandlerGate) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        route = environ["PATH_INFO"]
        if route == "/fail":
            raise ValueError("application failed")
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        if route == "/block":
            gate.entered.release()
            assert gate.release.wait(30)
            return [b"unblocked"]
        if route.startswith("/context/"):
            before = seen_by_request.get()
            seen_by_request.set(route)
            return [f"{before} {route}".encode()]
        if route == "/stream":
            return (LARGE[start : start + CHUNK] for start in range(0, len(LARGE), CHUNK))
        if route == "/write":
            for start in range(0, len(LARGE), CHUNK):
                write(LARGE[start : start + CHUNK])
            return []
        if route == "/file":
            return environ["wsgi.file_wrapper"](io.BytesIO(LARGE), CHUNK)
        return [b"hello"]

    return app


@pytest.fixture(params=["asyncio", "uvloop"])
def served(
    request: pytest.FixtureRequest, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[ServerThread, HandlerGate]]]:
    """Start a server for the app (``limits`` optional) on the parametrised loop."""
    started: list[tuple[ServerThread, WSGIHandler, HandlerGate]] = []

    def start(limits: ServerLimits | None = None) -> tuple[ServerThread, HandlerGate]:
        gate = HandlerGate()
        handler = WSGIHandler(make_app(gate), threads=4)
        with monkeypatch.context() as patch:
            if request.param == "uvloop":
                patch.setattr(asyncio, "new_event_loop", uvloop.new_event_loop)
            server = ServerThread(
                handler, [str(sockdir / f"wsgi{len(started)}.sock")], server_limits=limits
            )
        started.append((server.__enter__(), handler, gate))
        return server, gate

    yield start
    for server, handler, gate in reversed(started):
        gate.release.set()
        server.__exit__(None, None, None)
        handler.close()


def get(client: FastCGIClient, route: str, request_id: int = 1) -> tuple[dict[str, str], bytes]:
    params = {"REQUEST_URI": route, "SCRIPT_NAME": "", "PATH_INFO": route}
    return client.request(request_id, params=params).split()


def send(client: FastCGIClient, route: str, request_id: int = 1) -> None:
    params = {"REQUEST_URI": route, "SCRIPT_NAME": "", "PATH_INFO": route}
    client.send(request_bytes(request_id, params))


def test_a_request_in_flight_has_no_task_and_counts_as_direct(
    served: Callable[..., tuple[ServerThread, HandlerGate]],
) -> None:
    server, gate = served()
    with FastCGIClient(server.addresses[0]) as client:
        send(client, "/block")
        gate.wait_entered()
        assert len(server.server.direct) == 1 and not server.server.tasks
        gate.release.set()
        assert client.read_response(1).split()[1] == b"unblocked"
    wait_until(lambda: not server.server.direct, what="the request counted as finished")
    assert server.server.stats.requests_finished == server.server.stats.requests_started == 1


def test_each_request_runs_in_its_own_context(
    served: Callable[..., tuple[ServerThread, HandlerGate]],
) -> None:
    server, _ = served()
    with FastCGIClient(server.addresses[0]) as client:
        for index in range(20):  # the same threads serve them, one after another
            assert get(client, f"/context/{index}")[1] == f"fresh /context/{index}".encode()


@pytest.mark.parametrize("route", ["/stream", "/write", "/file"])
def test_end_request_follows_all_output_the_thread_sent(
    served: Callable[..., tuple[ServerThread, HandlerGate]], route: str
) -> None:
    server, _ = served()
    with FastCGIClient(server.addresses[0]) as client:
        for _ in range(3):
            response = client.request(params={"REQUEST_URI": route, "PATH_INFO": route})
            assert response.protocol_status == REQUEST_COMPLETE
            body = response.split()[1]
            assert len(body) == len(LARGE) and body == LARGE


def test_max_requests_counts_requests_in_flight(
    served: Callable[..., tuple[ServerThread, HandlerGate]],
) -> None:
    server, gate = served(ServerLimits(max_requests=1))
    with FastCGIClient(server.addresses[0]) as client:
        send(client, "/block")
        gate.wait_entered()
        head, _ = get(client, "/hello", 2)
        assert head["status"].startswith("503")
        gate.release.set()
        assert client.read_response(1).split()[1] == b"unblocked"
        wait_until(lambda: not server.server.direct, what="the first request finished")
        assert get(client, "/hello", 3)[1] == b"hello"


def test_graceful_close_waits_for_a_running_application(
    served: Callable[..., tuple[ServerThread, HandlerGate]],
) -> None:
    server, gate = served()
    with FastCGIClient(server.addresses[0]) as client:
        send(client, "/block")
        gate.wait_entered()
        closing = asyncio.run_coroutine_threadsafe(server.server.close(30), server.loop)
        wait_until(lambda: server.server._closing, what="close started")
        assert not closing.done() and server.server.direct
        gate.release.set()
        response = client.read_response(1)
        assert (response.protocol_status, response.split()[1]) == (REQUEST_COMPLETE, b"unblocked")
        closing.result(30)
    assert not server.server.direct and server.server.stats.requests_finished == 1


def test_an_aborted_request_ends_after_its_thread_without_its_output(
    served: Callable[..., tuple[ServerThread, HandlerGate]],
) -> None:
    server, gate = served()
    with FastCGIClient(server.addresses[0]) as client:
        send(client, "/block")
        gate.wait_entered()
        client.send(encode_record(ABORT, 1))
        gate.release.set()
        response = client.read_response(1)
        assert response.protocol_status == REQUEST_COMPLETE and response.stdout == b""
        assert get(client, "/hello", 2)[1] == b"hello"


def test_a_failing_application_gives_a_500_and_the_server_keeps_serving(
    served: Callable[..., tuple[ServerThread, HandlerGate]],
) -> None:
    server, _ = served()
    with FastCGIClient(server.addresses[0]) as client:
        head, body = get(client, "/fail")
        assert head["status"].startswith("500") and body == b"Internal Server Error\n"
        assert get(client, "/hello", 2)[1] == b"hello"


def test_threads_shut_down_give_a_500_and_the_server_keeps_running(
    served: Callable[..., tuple[ServerThread, HandlerGate]], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = served()
    handler: Any = server.server.handler
    executor: HandlerThreads = handler.executor
    executor.shutdown()
    with FastCGIClient(server.addresses[0]) as client:
        for request_id in (1, 2):
            head, body = get(client, "/hello", request_id)
            assert head["status"].startswith("500") and body == b"Internal Server Error\n"
    assert "unhandled error in request handler" in caplog.text
