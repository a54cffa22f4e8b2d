"""Server-wide limits and timeouts (``smisk.server.limits.ServerLimits``): each refuses only the
request or connection that crossed it, with a clear status and a log line, and the server goes
on serving."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from smisk.protocol.records import encode_record
from smisk.server.limits import ServerLimits, parse_size
from tests.hardening.conftest import MakeServer
from tests.serve.support import ServeProcess, write_app
from tests.support.fcgi_client import (
    PARAMS,
    STDIN,
    FastCGIClient,
    begin_record,
    params_records,
    request_bytes,
)
from tests.support.serving import wait_until


def uri(path: str, **extra: str) -> dict[str, str]:
    return {"REQUEST_URI": path, **extra}


def status_of(stdout: bytes) -> bytes:
    return bytes(stdout).split(b"\r\n", 1)[0]


def test_body_over_max_body_size_is_refused_while_streaming(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    served = make_server(ServerLimits(max_body_size=100_000))
    with FastCGIClient(served.addresses[0]) as client:
        # No CONTENT_LENGTH: only counting the stream can catch it.
        client.send(begin_record(1) + params_records(1, uri("/sha256")))
        client.send(encode_record(STDIN, 1, b"x" * 60_000) * 2)
        response = client.read_response(1)
        assert status_of(response.stdout) == b"Status: 413 Request Entity Too Large"
        client.send(encode_record(STDIN, 1, b"late") + encode_record(STDIN, 1))  # ignored
        assert client.request(2, params=uri("/hello")).split()[1] == b"Hello World!"
    assert "over max_body_size" in caplog.text
    assert served.server.stats.requests_refused == 1


def test_content_length_over_max_body_size_is_refused_before_the_handler(
    make_server: MakeServer,
) -> None:
    served = make_server(ServerLimits(max_body_size=10))
    with FastCGIClient(served.addresses[0]) as client:
        params = uri("/echo", CONTENT_LENGTH="11")
        response = client.request(1, params=params, body=b"x" * 11)
        assert status_of(response.stdout) == b"Status: 413 Request Entity Too Large"
        ok = client.request(2, params=uri("/echo", CONTENT_LENGTH="10"), body=b"y" * 10)
        assert ok.split()[1] == b"y" * 10
    assert served.server.stats.requests_started == 1  # the refused one never ran


def test_requests_over_max_requests_get_503_with_retry_after(make_server: MakeServer) -> None:
    served = make_server(ServerLimits(max_requests=2))
    with FastCGIClient(served.addresses[0]) as client:
        client.send(request_bytes(1, uri("/hold?key=a")) + request_bytes(2, uri("/hold?key=b")))
        wait_until(lambda: len(served.server.tasks) == 2, what="two in flight")
        third = client.request(3, params=uri("/hello"))
        head, _ = third.split()
        assert head["status"].startswith("503") and head["retry-after"] == "1"
        client.request(4, params=uri("/hello"))  # still 503: both slots held
        with FastCGIClient(served.addresses[0]) as other:
            other.request(params=uri("/release?key=a"))  # refused too (503), but...
        served.call(_release("a"))
        assert client.read_response(1).split()[1] == b"released a"
        assert client.request(5, params=uri("/release?key=b")).split()[1] == b"ok"
        assert client.read_response(2).split()[1] == b"released b"


async def _release(key: str) -> None:
    from tests.support.handlers import _gate

    _gate(key).set()


def test_begin_request_then_nothing_hits_the_params_timeout(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    served = make_server(ServerLimits(params_timeout=0.3))
    with FastCGIClient(served.addresses[0], timeout=10) as idle:
        idle.send(begin_record(1) + encode_record(PARAMS, 1, b"\x0b\x02REQUEST_URI/x"))
        assert idle.at_eof()
    assert "params incomplete" in caplog.text
    assert served.server.stats.timeouts == 1
    with FastCGIClient(served.addresses[0]) as fresh:
        assert fresh.request(params=uri("/hello")).split()[1] == b"Hello World!"


def test_trickling_body_hits_the_body_timeout(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    served = make_server(ServerLimits(body_timeout=0.3))
    with FastCGIClient(served.addresses[0], timeout=10) as slow:
        slow.send(begin_record(1) + params_records(1, uri("/sha256")))
        slow.send(encode_record(STDIN, 1, b"first bytes"))
        response = slow.read_response(1)
        assert status_of(response.stdout) == b"Status: 408 Request Timeout"
        assert slow.at_eof()
    assert "no body for" in caplog.text
    wait_until(lambda: not served.server.tasks, what="the handler to stop")


def test_slow_handler_is_not_a_body_timeout(make_server: MakeServer) -> None:
    """Reading paused because the handler does not read: the peer is not to blame."""
    served = make_server(ServerLimits(body_timeout=0.2))
    with FastCGIClient(served.addresses[0], timeout=10) as client:
        client.send(begin_record(1) + params_records(1, uri("/hold?key=slow")))
        client.send(encode_record(STDIN, 1, b"z" * 65_000) * 12)  # over the high-water mark
        wait_until(lambda: _reading_paused(served), what="reading to pause")
        with FastCGIClient(served.addresses[0]) as other:
            assert other.request(params=uri("/release?key=slow")).split()[1] == b"ok"
        assert client.read_response(1).split()[1] == b"released slow"
    assert served.server.stats.timeouts == 0


def _reading_paused(served: object) -> bool:
    return any(c._reading_paused for c in served.server.connections)  # type: ignore[attr-defined]


def test_large_response_header_block_is_logged(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def big_headers(cycle: object) -> None:
        head = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 100) for i in range(50))
        cycle.end(b"Content-Type: text/plain\r\n" + head + b"\r\nbody")  # type: ignore[attr-defined]

    served = make_server(handler=big_headers)
    with (
        caplog.at_level(logging.WARNING, "smisk.server"),
        FastCGIClient(served.addresses[0]) as client,
    ):
        assert client.request().split()[1] == b"body"
    assert "response header block of" in caplog.text and "4096" in caplog.text


def test_small_header_block_is_not_logged(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    served = make_server()
    with FastCGIClient(served.addresses[0]) as client:
        client.request(params=uri("/big?size=100000"))
    assert "header block" not in caplog.text


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("512k", 512 * 1024), ("10M", 10 * 1024**2), ("1G", 1024**3),
     ("64KiB", 64 * 1024), ("2mb", 2 * 1024**2), ("0", 0)],
)  # fmt: skip
def test_sizes_take_binary_suffixes(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert ServerLimits.from_environ({"SMISK_MAX_BODY_SIZE": text}).max_body_size == size


@pytest.mark.parametrize("text", ["", "k", "-1", "1T", "1.5M", "10 M", "lots"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_smisk_serve_limit_options_reach_the_workers(tmp_path: Path) -> None:
    write_app(tmp_path)
    sock = str(tmp_path / "app.sock")
    argv = ["app:App", "--bind", f"unix:{sock}", "--workers", "2", "--max-body-size", "1k"]
    with ServeProcess(argv, tmp_path) as server:
        server.wait_for("ready: 2 workers")
        for size, status in ((1024, b"200"), (1025, b"413")):
            with FastCGIClient(sock, timeout=30) as client:
                params = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(size)} | uri("/")
                response = client.request(params=params, body=b"x" * size)
            headers, body = response.split()
            assert headers.get("status", "200").split()[0].encode() == status, body
