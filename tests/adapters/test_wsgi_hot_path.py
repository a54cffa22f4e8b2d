"""The per-request work the WSGI adapter is spared, and that skipping it changes nothing: each
distinct status and header is checked once (a refused one every time; cookies and long values
never kept), and the environ is complete and the request's own. Served behind a real nginx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from smisk.adapters import wsgi
from smisk.adapters.wsgi import WSGIHandler
from smisk.core.headers import check_header
from tests.adapters.conftest import Front

pytestmark = pytest.mark.nginx

HELLO_HEADERS = [
    ("Content-Type", "text/plain"),
    ("X-Hot", "1"),
    ("Set-Cookie", "token=s3cret"),
    ("Content-Length", "12"),
]


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/bad-header":
        start_response("200 OK", [("X-A", "1\x7f")])
    elif path == "/bad-status":
        start_response("200 Caf\u20ac", [])
    elif path == "/environ":
        start_response("200 OK", [("Content-Type", "application/json")])
        seen = {key: repr(value) for key, value in environ.items() if key.startswith("wsgi.")}
        seen["ids"] = repr((id(environ["wsgi.input"]), id(environ["wsgi.errors"])))
        return [json.dumps(seen).encode()]
    else:
        start_response("200 OK", HELLO_HEADERS)
    return [b"Hello World!"]


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    wsgi._cached_status_line.cache_clear()
    wsgi._cached_header_line.cache_clear()
    yield
    wsgi._cached_status_line.cache_clear()
    wsgi._cached_header_line.cache_clear()


def test_a_header_is_checked_once(
    front: Front, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    checked: list[tuple[str, str]] = []

    def counting(name: str, value: str) -> None:
        checked.append((name, value))
        check_header(name, value)

    monkeypatch.setattr(wsgi, "check_header", counting)
    nginx, _ = front(WSGIHandler(hello, threads=2))
    for _ in range(3):
        status, headers, body = nginx.get("/")
        assert (status, body) == (200, b"Hello World!")
        assert (headers["Content-Type"], headers["X-Hot"]) == ("text/plain", "1")
        assert headers["Set-Cookie"] == "token=s3cret"
    # Set-Cookie values carry secrets: checked every time, never kept in the cache
    assert sorted(checked) == [
        ("Content-Length", "12"),
        ("Content-Type", "text/plain"),
        *[("Set-Cookie", "token=s3cret")] * 3,
        ("X-Hot", "1"),
    ]
    assert wsgi._cached_header_line.cache_info().currsize == 3
    assert wsgi._cached_status_line.cache_info().currsize == 1


def test_a_refused_status_or_header_is_refused_every_time(front: Front, fresh_caches: None) -> None:
    nginx, _ = front(WSGIHandler(hello, threads=2))
    for _ in range(2):
        for path in ("/bad-header", "/bad-status"):
            status, _, body = nginx.get(path)
            assert status == 500
            assert body == b"Internal Server Error\n"
    assert nginx.get("/")[2] == b"Hello World!"  # the server keeps serving
    assert wsgi._cached_header_line.cache_info().currsize == 3


def test_the_environ_is_complete_and_the_requests_own(front: Front) -> None:
    nginx, _ = front(WSGIHandler(hello, threads=1, multiprocess=True))
    first = json.loads(nginx.get("/environ")[2])
    second = json.loads(nginx.get("/environ")[2])
    assert set(first) == {
        "ids",
        "wsgi.version",
        "wsgi.input",
        "wsgi.input_terminated",
        "wsgi.errors",
        "wsgi.multithread",
        "wsgi.multiprocess",
        "wsgi.run_once",
        "wsgi.url_scheme",
        "wsgi.file_wrapper",
    }
    assert first["wsgi.multiprocess"] == "True" and first["wsgi.multithread"] == "True"
    assert first["wsgi.version"] == "(1, 0)" and first["wsgi.run_once"] == "False"
    assert first["ids"] != second["ids"]  # a new input and error stream for every request


def test_the_head_is_built_from_checked_lines(fresh_caches: None) -> None:
    length, head = wsgi._check_response("404 Not Found", [("X-A", "caf\u00e9"), *HELLO_HEADERS])
    assert length == 12
    assert head == (
        b"Status: 404 Not Found\r\nX-A: caf\xe9\r\nContent-Type: text/plain\r\nX-Hot: 1\r\n"
        b"Set-Cookie: token=s3cret\r\nContent-Length: 12\r\n\r\n"
    )
    assert wsgi._check_response("404 Not Found", [("X-A", "caf\u00e9")])[1] == (
        b"Status: 404 Not Found\r\nX-A: caf\xe9\r\n\r\n"
    )
    assert wsgi._cached_header_line.cache_info().hits == 1


def test_long_values_and_str_subclasses_are_checked_but_not_kept(fresh_caches: None) -> None:
    class Text(str):
        pass

    long_value = "x" * (wsgi.CACHED_VALUE_LIMIT + 1)
    for _ in range(2):
        _, head = wsgi._check_response(Text("200 OK"), [("X-Long", long_value), (Text("X"), "1")])
        assert head == f"Status: 200 OK\r\nX-Long: {long_value}\r\nX: 1\r\n\r\n".encode()
    assert wsgi._cached_header_line.cache_info().currsize == 0
    assert wsgi._cached_status_line.cache_info().currsize == 0
    with pytest.raises(ValueError, match="X-Bad: 1"):
        wsgi._check_response("200 OK", [("X-Ok", "1"), (Text("X-Bad"), Text("1\r\nX-Bad: 1"))])


@pytest.mark.parametrize(
    ("status", "headers", "error", "match"),
    [
        ("200", [], ValueError, "invalid WSGI status"),
        (b"200 OK", [], ValueError, "invalid WSGI status"),
        ("99 Nope", [], ValueError, "invalid WSGI status"),
        ("199 Early", [], ValueError, "200-599"),
        ("200 Caf\u20ac", [], ValueError, "status is not latin-1"),
        ("200 OK", [("X-A", b"1")], TypeError, "must be str"),
        ("200 OK", [("X-A", "\u20ac")], ValueError, "X-A is not latin-1"),
        ("200 OK", [("Connection", "close")], ValueError, "hop-by-hop"),
        ("200 OK", [("X A", "1")], ValueError, "token"),
    ],
)
def test_refusals_raise_every_time(
    status: Any, headers: Any, error: type[Exception], match: str, fresh_caches: None
) -> None:
    for _ in range(2):
        with pytest.raises(error, match=match):
            wsgi._check_response(status, [("X-Ok", "1"), *headers])
