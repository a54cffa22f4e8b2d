"""smisk.adapters.wsgi behind a real nginx: Flask, and raw PEP 3333 applications for the corner cases."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smisk.adapters import wsgi
from smisk.adapters.wsgi import FileWrapper, WSGIHandler
from tests.adapters import apps
from tests.adapters.client import get_with_headers, read_streamed, read_then_leave
from tests.adapters.conftest import Front
from tests.support.serving import wait_until

pytestmark = pytest.mark.nginx

FILE_SIZE = 3 * 1024 * 1024 + 123  # several file chunks, not a multiple of any of them


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(FILE_SIZE))
    return path


@pytest.fixture
def flask_front(front: Front, events: list[str], gate: threading.Event, data_file: Path) -> Any:
    nginx, _ = front(WSGIHandler(apps.flask_app(events, gate, str(data_file)), threads=4))
    return nginx


# -- Flask ----------------------------------------------------------------------------------------


def test_flask_routing_and_query(flask_front: Any) -> None:
    status, headers, body = flask_front.get("/hello/bob?q=caf%C3%A9")
    assert status == 200
    assert body.decode() == "hello bob at |/hello/bob q=café"
    assert headers["Content-Length"] == str(len(body))
    assert flask_front.get("/missing")[0] == 404


def test_flask_form_post(flask_front: Any) -> None:
    status, _, body = flask_front.get("/form", b"a=1&b=%C3%A5")
    assert status == 200
    assert json.loads(body) == {"form": {"a": "1", "b": "å"}, "files": {}}


def test_flask_file_upload(flask_front: Any) -> None:
    content = os.urandom(700_000)
    body, content_type = apps.multipart({"title": "t"}, {"upload": ("a.bin", content)})
    status, _, answer = flask_front.get("/form", body, {"Content-Type": content_type})
    assert status == 200
    assert json.loads(answer) == {"form": {"title": "t"}, "files": {"upload": ["a.bin", 700_000]}}


def test_flask_streaming_arrives_incrementally(flask_front: Any, gate: threading.Event) -> None:
    first, whole = read_streamed(flask_front, "/stream", gate)
    assert first == b"first;"
    assert whole == b"first;second;"


def test_flask_error_page(flask_front: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="smisk_test_flask"):
        status, _, _ = flask_front.get("/boom")
    assert status == 500


def test_flask_small_response_is_one_hand_off(
    flask_front: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[bool] = []
    original = wsgi._Exchange._flush

    def counting(self: Any, wait: bool) -> None:
        flushes.append(wait)
        original(self, wait)

    monkeypatch.setattr(wsgi._Exchange, "_flush", counting)
    assert flask_front.get("/hello/x")[0] == 200
    assert flushes == []  # head and body leave the thread together, as its result


def test_flask_send_file_uses_the_file_wrapper(
    flask_front: Any, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[FileWrapper] = []
    original = wsgi._Exchange._send_file

    def recording(self: Any, wrapper: FileWrapper) -> None:
        sent.append(wrapper)
        original(self, wrapper)

    monkeypatch.setattr(wsgi._Exchange, "_send_file", recording)
    status, headers, body = flask_front.get("/file")
    assert len(sent) == 1
    assert status == 200
    assert headers["Content-Length"] == str(FILE_SIZE)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data_file.read_bytes()).digest()


def test_flask_disconnect_closes_the_iterable(flask_front: Any, events: list[str]) -> None:
    assert read_then_leave(flask_front, "/forever")
    wait_until(lambda: "generator closed" in events, what="the generator to be closed")


# -- raw PEP 3333 applications ----------------------------------------------------------------


def environ_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "wsgi.url_scheme")
    dump = {key: environ[key] for key in keys}
    dump["headers"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    dump["multithread"] = environ["wsgi.multithread"]
    dump["file_wrapper"] = environ["wsgi.file_wrapper"] is FileWrapper
    body = json.dumps(dump).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_environ_through_nginx(front: Front) -> None:
    nginx, _ = front(WSGIHandler(environ_app, threads=2))
    headers = [("X-Dup", "one"), ("X-Dup", "two"), ("Proxy", "http://evil")]
    status, body = get_with_headers(nginx, "/caf%C3%A9/x%20y?a=%C3%A5", headers)
    assert status == 200
    dump = json.loads(body)
    assert dump["SCRIPT_NAME"] == ""
    assert dump["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/x y"
    assert dump["QUERY_STRING"] == "a=%C3%A5"
    assert dump["REQUEST_METHOD"] == "GET"
    assert dump["wsgi.url_scheme"] == "http"
    assert dump["headers"]["HTTP_X_DUP"] == "one, two"
    assert "HTTP_PROXY" not in dump["headers"]
    assert dump["multithread"] is True and dump["file_wrapper"] is True


def test_mount_prefix_splits_script_name(front: Front) -> None:
    nginx, _ = front(WSGIHandler(environ_app, threads=2, script_name="/app"))
    dump = json.loads(nginx.get("/app/x?y")[2])
    assert (dump["SCRIPT_NAME"], dump["PATH_INFO"]) == ("/app", "/x")


def input_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    first_line = stream.readline()
    four = stream.read(4)
    next_lines = stream.readlines(1)
    iterated = list(stream)
    rest = stream.read()
    result = [first_line, four, b"".join(next_lines), b"".join(iterated), rest]
    body = json.dumps([part.decode() for part in result]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_input_stream_methods(front: Front) -> None:
    nginx, _ = front(WSGIHandler(input_app, threads=2))
    lines = b"line one\nabcdline two\nline three\n" + b"z" * 200_000 + b"\nlast"
    status, _, body = nginx.get("/", lines)
    assert status == 200
    first, four, next_lines, iterated, rest = json.loads(body)
    assert (first, four, next_lines) == ("line one\n", "abcd", "line two\n")
    assert iterated == "line three\n" + "z" * 200_000 + "\nlast"
    assert rest == ""


def large_upload_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    digest, total = hashlib.sha256(), 0
    while chunk := environ["wsgi.input"].read(50_000):
        digest.update(chunk)
        total += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{total} {digest.hexdigest()}".encode()]


def test_large_body_is_streamed_in_chunks(front: Front) -> None:
    nginx, _ = front(WSGIHandler(large_upload_app, threads=2))
    payload = os.urandom(5 * 1024 * 1024)
    status, _, body = nginx.get("/", payload)
    assert status == 200
    assert body.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


class Recorder:
    """An iterable that records whether the server closed it."""

    def __init__(self, blocks: list[bytes], fail_after: int | None = None) -> None:
        self.blocks, self.fail_after, self.closed = blocks, fail_after, False

    def __iter__(self) -> Iterator[bytes]:
        for index, block in enumerate(self.blocks):
            if index == self.fail_after:
                raise RuntimeError("failed while streaming")
            yield block

    def close(self) -> None:
        self.closed = True


def test_error_before_start_response_is_a_500(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        raise RuntimeError("broken")

    nginx, _ = front(WSGIHandler(app, threads=1))
    with caplog.at_level(logging.CRITICAL, logger="smisk.wsgi"):
        status, _, body = nginx.get("/")
    assert (status, body) == (500, b"Internal Server Error\n")


@pytest.mark.parametrize(
    ("status", "header"),
    [
        ("200 OK", ("X-A\r\nSet-Cookie", "1")),
        ("200 OK", ("X-A", "1\r\nSet-Cookie: pwn=1")),
        ("200 OK", ("X-A", "a\0b")),
        ("200 OK", ("X A", "1")),
        ("200 OK", ("X-A", b"1")),
        ("200 OK", ("X-A", "a\x7fb")),
        ("200 OK", ("X-A", "\u20ac")),  # not latin-1 (PEP 3333)
        ("200 OK\0", ("X-A", "1")),
    ],
)
def test_unsafe_response_header_is_a_500_and_never_reaches_the_client(
    front: Front, caplog: pytest.LogCaptureFixture, status: str, header: tuple[str, Any]
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response(status, [("X-Ok", "1"), header])
        return [b"never-sent"]

    nginx, _ = front(WSGIHandler(app, threads=1))
    with caplog.at_level(logging.CRITICAL, logger="smisk.wsgi"):
        code, headers, body = nginx.get("/")
        assert (code, body) == (500, b"Internal Server Error\n")
        assert not {name.lower() for name in headers} & {"set-cookie", "x-ok", "x-a"}
        assert nginx.get("/")[0] == 500  # the server goes on serving


def test_error_after_headers_sent_ends_the_request_and_closes(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder([b"a" * 10, b"b" * 10, b"c"], fail_after=2)

    def app(environ: Any, start_response: Any) -> Recorder:
        start_response("200 OK", [("Content-Type", "text/plain"), *apps.NO_BUFFERING.items()])
        return recorder

    nginx, _ = front(WSGIHandler(app, threads=1))
    with caplog.at_level(logging.ERROR, logger="smisk.wsgi"):
        status, _, body = nginx.get("/")
    assert (status, body) == (200, b"a" * 10 + b"b" * 10)
    assert recorder.closed
    assert any("after the response began" in r.message for r in caplog.records)


def test_exc_info_replaces_headers_not_yet_sent(front: Front) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late problem")
        except ValueError:
            start_response("503 Service Unavailable", [("Retry-After", "1")], sys.exc_info())
        return [b"try later"]

    nginx, _ = front(WSGIHandler(app, threads=1))
    status, headers, body = nginx.get("/")
    assert (status, headers["Retry-After"], body) == (503, "1", b"try later")


def test_exc_info_after_headers_sent_reraises(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: list[str] = []

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("late problem")
        except ValueError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except ValueError as error:
                outcome.append(f"re-raised {error}")
                raise

    nginx, _ = front(WSGIHandler(app, threads=1))
    with caplog.at_level(logging.CRITICAL, logger="smisk.wsgi"):
        status, _, body = nginx.get("/")
    assert (status, body) == (200, b"partial")
    assert outcome == ["re-raised late problem"]


def test_write_callable_and_iterable_together(front: Front) -> None:
    recorder = Recorder([b"-iterable"])

    def app(environ: Any, start_response: Any) -> Recorder:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        return recorder

    nginx, _ = front(WSGIHandler(app, threads=1))
    assert nginx.get("/")[2] == b"written-iterable"
    assert recorder.closed


def test_content_length_caps_the_body(front: Front) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "5")])
        return [b"12345", b"6789"]

    nginx, _ = front(WSGIHandler(app, threads=1))
    assert nginx.get("/")[2] == b"12345"


def test_file_wrapper_sends_the_file_and_closes_it(front: Front, data_file: Path) -> None:
    handles: list[Any] = []

    def app(environ: Any, start_response: Any) -> Any:
        handle = open(data_file, "rb")  # noqa: SIM115 -- the server closes it
        handles.append(handle)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](handle, 4096)

    nginx, _ = front(WSGIHandler(app, threads=1))
    body = nginx.get("/")[2]
    assert hashlib.sha256(body).digest() == hashlib.sha256(data_file.read_bytes()).digest()
    assert handles[0].closed


# nginx answered "099 X" and "000 X" with a status line clients cannot parse, passed "100 X" on
# as the final status and "999 X" as a status no client knows.
@pytest.mark.parametrize("status", ["OK", "099 Low", "000 Zero", "100 Continue", "600 High"])
def test_bad_status_is_an_error(
    front: Front, caplog: pytest.LogCaptureFixture, status: str
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response(status, [])
        return [b"never-sent"]

    nginx, _ = front(WSGIHandler(app, threads=1))
    with caplog.at_level(logging.CRITICAL, logger="smisk.wsgi"):
        assert nginx.get("/")[:3:2] == (500, b"Internal Server Error\n")


def test_wsgi_errors_go_to_the_log(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        environ["wsgi.errors"].write("something odd\nhalf")
        environ["wsgi.errors"].flush()
        start_response("204 No Content", [])
        return []

    nginx, _ = front(WSGIHandler(app, threads=1))
    with caplog.at_level(logging.ERROR, logger="smisk.wsgi"):
        assert nginx.get("/")[0] == 204
    assert [r.message for r in caplog.records if r.name == "smisk.wsgi"] == [
        "something odd",
        "half",
    ]


def test_large_streamed_response_with_backpressure(front: Front) -> None:
    block = bytes(range(256)) * 16  # 4 KiB

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(2048):  # 8 MiB in small blocks: many windows, each ended by a drain
            yield block

    nginx, _ = front(WSGIHandler(app, threads=1))
    body = nginx.get("/")[2]
    assert len(body) == 2048 * len(block)
    assert body == block * 2048


def test_start_response_names_a_header_that_is_not_latin_1() -> None:
    from smisk.adapters.wsgi import _check_response

    with pytest.raises(ValueError, match="X-Price is not latin-1"):
        _check_response("200 OK", [("X-Ok", "caf\u00e9"), ("X-Price", "5 \u20ac")])
    assert _check_response("200 OK", [("X-Ok", "caf\u00e9"), ("Content-Length", "3")])[0] == 3
