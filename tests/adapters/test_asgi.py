"""smisk.adapters.asgi behind a real nginx: Starlette, and raw ASGI 3 applications for the corner cases."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from typing import Any

import pytest

from smisk.adapters.asgi import ASGIHandler, LifespanFailure
from tests.adapters import apps
from tests.adapters.client import read_streamed, read_then_leave
from tests.adapters.conftest import Front
from tests.support.serving import wait_until

pytestmark = pytest.mark.nginx


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


def recording(app: Any, received: list[str]) -> Any:
    """ASGI middleware that records the type of every message the application receives."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        async def recorded_receive() -> Any:
            message = await receive()
            received.append(message["type"])
            return message

        await app(scope, recorded_receive, send)

    return wrapper


@pytest.fixture
def starlette_front(front: Front, events: list[str], gate: threading.Event) -> Any:
    nginx, _ = front(ASGIHandler(apps.starlette_app(events, gate)))
    return nginx


# -- Starlette ------------------------------------------------------------------------------------


def test_starlette_routing_query_and_lifespan_state(starlette_front: Any) -> None:
    status, _, body = starlette_front.get("/hello/bob?q=caf%C3%A9")
    assert status == 200
    assert body.decode() == "hello bob at /hello/bob q=café state=yes"
    assert starlette_front.get("/missing")[0] == 404


def test_starlette_form_post(starlette_front: Any) -> None:
    status, _, body = starlette_front.get("/form", b"a=1&b=%C3%A5")
    assert status == 200
    assert json.loads(body) == {"form": {"a": "1", "b": "å"}, "files": {}}


def test_starlette_file_upload(starlette_front: Any) -> None:
    content = os.urandom(700_000)
    body, content_type = apps.multipart({"title": "t"}, {"upload": ("a.bin", content)})
    status, _, answer = starlette_front.get("/form", body, {"Content-Type": content_type})
    assert status == 200
    assert json.loads(answer) == {"form": {"title": "t"}, "files": {"upload": ["a.bin", 700_000]}}


def test_starlette_streaming_arrives_incrementally(
    starlette_front: Any, gate: threading.Event
) -> None:
    first, whole = read_streamed(starlette_front, "/stream", gate)
    assert first == b"first;"
    assert whole == b"first;second;"


def test_starlette_error_is_a_500(starlette_front: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL):
        assert starlette_front.get("/boom")[0] == 500


def test_starlette_lifespan_events(front: Front, events: list[str], gate: threading.Event) -> None:
    handler = ASGIHandler(apps.starlette_app(events, gate))
    nginx, server = front(handler)
    assert events == ["startup"]
    assert nginx.get("/hello/x")[0] == 200
    server.close()
    server.call(handler.shutdown())
    assert events == ["startup", "shutdown"]


def test_starlette_disconnect_is_received(front: Front, events: list[str]) -> None:
    received: list[str] = []
    app = recording(apps.starlette_app(events, threading.Event()), received)
    nginx, _ = front(ASGIHandler(app, lifespan="off"))
    assert read_then_leave(nginx, "/forever")
    wait_until(lambda: "http.disconnect" in received, what="http.disconnect")
    wait_until(lambda: "generator closed" in events, what="the stream to stop")


# -- lifespan -------------------------------------------------------------------------------------


async def failing_lifespan(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


async def raising_lifespan(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    raise RuntimeError("cannot start")


async def http_only(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"


async def test_lifespan_startup_failed_refuses_to_serve() -> None:
    handler = ASGIHandler(failing_lifespan)
    with pytest.raises(LifespanFailure, match="no database"):
        await handler.startup()


async def test_lifespan_raising_after_startup_message_refuses_to_serve() -> None:
    handler = ASGIHandler(raising_lifespan)
    with pytest.raises(LifespanFailure, match="cannot start"):
        await handler.startup()


async def test_starlette_lifespan_failure_refuses_to_serve(events: list[str]) -> None:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        raise RuntimeError("no config")
        yield

    handler = ASGIHandler(Starlette(lifespan=lifespan))
    with pytest.raises(LifespanFailure, match="no config"):
        await handler.startup()


async def test_lifespan_unsupported_is_fine_in_auto_and_fatal_when_on() -> None:
    await ASGIHandler(http_only).startup()
    with pytest.raises(LifespanFailure):
        await ASGIHandler(http_only, lifespan="on").startup()


# -- raw ASGI applications ------------------------------------------------------------------------


async def scope_app(scope: Any, receive: Any, send: Any) -> None:
    dump = {k: scope[k] for k in ("http_version", "method", "scheme", "path", "root_path")}
    dump["raw_path"] = scope["raw_path"].decode("latin-1")
    dump["query_string"] = scope["query_string"].decode("latin-1")
    dump["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    dump["client"], dump["asgi"] = scope["client"], scope["asgi"]
    body = json.dumps(dump).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_scope_through_nginx(front: Front) -> None:
    nginx, _ = front(ASGIHandler(scope_app, root_path="/api", lifespan="off"))
    status, _, body = nginx.get("/api/caf%C3%A9?x=%C3%A5", headers={"X-Thing": "1"})
    assert status == 200
    dump = json.loads(body)
    assert dump["path"] == "/api/café" and dump["root_path"] == "/api"
    assert dump["raw_path"] == "/api/caf%C3%A9"
    assert dump["query_string"] == "x=%C3%A5"
    assert dump["method"] == "GET" and dump["scheme"] == "http"
    assert dump["http_version"] == "1.1"
    assert ["x-thing", "1"] in dump["headers"]
    assert dump["client"][0] == "127.0.0.1"
    assert dump["asgi"] == {"version": "3.0", "spec_version": "2.3"}


async def body_app(scope: Any, receive: Any, send: Any) -> None:
    total, messages = 0, 0
    while True:
        message = await receive()
        messages += 1
        total += len(message["body"])
        if not message["more_body"]:
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{total} {messages > 1}".encode()})


def test_request_body_streamed_in_messages(front: Front) -> None:
    nginx, _ = front(ASGIHandler(body_app, lifespan="off"))
    payload = os.urandom(3 * 1024 * 1024)
    assert nginx.get("/", payload)[2] == f"{len(payload)} True".encode()


async def big_stream_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    block = bytes(range(256)) * 1024
    for _ in range(32):  # 8 MiB: far more than the transport may buffer, so drains are awaited
        await send({"type": "http.response.body", "body": block, "more_body": True})
    await send({"type": "http.response.body", "body": b"end"})


def test_large_streamed_response(front: Front) -> None:
    nginx, _ = front(ASGIHandler(big_stream_app, lifespan="off"))
    body = nginx.get("/")[2]
    assert len(body) == 32 * 256 * 1024 + 3 and body.endswith(b"end")
    assert body[:256] == bytes(range(256))


async def raise_before_start(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("broken")


async def raise_after_start(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("broken later")


async def no_response(scope: Any, receive: Any, send: Any) -> None:
    return None


def test_exception_before_start_is_a_500(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    nginx, _ = front(ASGIHandler(raise_before_start, lifespan="off"))
    with caplog.at_level(logging.CRITICAL, logger="smisk.asgi"):
        assert nginx.get("/")[:3:2] == (500, b"Internal Server Error\n")


def test_exception_after_start_is_logged_and_ends(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    nginx, _ = front(ASGIHandler(raise_after_start, lifespan="off"))
    with caplog.at_level(logging.ERROR, logger="smisk.asgi"):
        status, headers, body = nginx.get("/")
    assert (status, headers["x-a"], body) == (200, "1", b"partial")
    assert any("after the response began" in r.message for r in caplog.records)


def header_app(headers: list[tuple[Any, Any]]) -> Any:
    """An ASGI app that answers with ``headers``; ``send`` errors reach it and it gives up."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"never-sent"})

    return app


@pytest.mark.parametrize(
    "header",
    [
        (b"x-a\r\nSet-Cookie", b"1"),
        (b"x-a", b"1\r\nSet-Cookie: pwn=1"),
        (b"x-a", b"1\nSet-Cookie: pwn=1"),
        (b"x-a", b"a\0b"),
        (b"x a", b"1"),
        (b"", b"1"),
        ("x-a", "1"),
    ],
)
def test_unsafe_response_header_is_a_500_and_never_reaches_the_client(
    front: Front, caplog: pytest.LogCaptureFixture, header: tuple[Any, Any]
) -> None:
    nginx, _ = front(ASGIHandler(header_app([(b"x-ok", b"1"), header]), lifespan="off"))
    with caplog.at_level(logging.CRITICAL, logger="smisk.asgi"):
        status, headers, body = nginx.get("/")
        assert (status, body) == (500, b"Internal Server Error\n")
        assert not {name.lower() for name in headers} & {"set-cookie", "x-ok", "x-a"}
        assert nginx.get("/")[0] == 500  # the server goes on serving


@pytest.mark.parametrize("status", [0, 99, 100, 600, 1000, -1])
def test_a_status_that_is_not_final_is_a_500(
    front: Front, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """nginx answered 502 below 100 and passed 1xx and four digits on as a status line that
    clients cannot parse."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"never-sent"})

    nginx, _ = front(ASGIHandler(app, lifespan="off"))
    with caplog.at_level(logging.CRITICAL, logger="smisk.asgi"):
        assert nginx.get("/")[:3:2] == (500, b"Internal Server Error\n")


def test_no_response_is_a_500(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    nginx, _ = front(ASGIHandler(no_response, lifespan="off"))
    with caplog.at_level(logging.CRITICAL, logger="smisk.asgi"):
        assert nginx.get("/")[0] == 500


def test_disconnect_while_waiting_without_output(front: Front) -> None:
    received: list[str] = []
    entered = threading.Event()

    async def long_poll(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        entered.set()
        received.append((await receive())["type"])

    nginx, _ = front(ASGIHandler(long_poll, lifespan="off"))
    with socket.create_connection(("127.0.0.1", nginx.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(10)  # then the client leaves without an answer
    wait_until(lambda: received == ["http.disconnect"], what="http.disconnect")


def test_send_after_disconnect_raises_oserror(front: Front) -> None:
    outcome: list[str] = []

    async def streamer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
                await asyncio.sleep(0.002)
        except OSError:
            outcome.append("OSError")

    nginx, _ = front(ASGIHandler(streamer, lifespan="off"))
    read_then_leave(nginx, "/")
    wait_until(lambda: outcome == ["OSError"], what="send() to fail")
