"""smisk.core.headers: the one response header check behind the classic Response, WSGI and ASGI.
Names are tokens; values hold no control character but HTAB; a classic line must be a ``str``."""

from __future__ import annotations

import pytest

from smisk.core.headers import check_header, check_status, split_header_line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Weird!#$%&'*+.^_`|~", ""),
        (b"set-cookie", b"a=1; Path=/"),
        (bytearray(b"x-a"), bytearray(b"\xff latin-1 \t tab")),
    ],
)
def test_safe_headers_pass(name: str | bytes, value: str | bytes) -> None:
    check_header(name, value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("X-A", "1\r\nSet-Cookie: pwn=1", "control character"),
        ("X-A", "1\nX-B: 2", "control character"),
        ("X-A", "a\0b", "control character"),
        ("X-A\r\nSet-Cookie", "1", "control character"),
        (b"x-a\r\nSet-Cookie", b"1", "control character"),
        (b"x-a", b"1\r\n\r\n<html>", "control character"),
        (b"x-a", b"\x00", "control character"),
        ("X-A", "a\x7fb", "control character"),
        ("X-A", "a\x1bb", "control character"),
        (b"x-a", b"\x0b", "control character"),
        ("", "1", "must be a token"),
        ("X A", "1", "must be a token"),
        ("X-A:", "1", "must be a token"),
        (b"x:a", b"1", "must be a token"),
        ("X-\u00e5", "1", "must be a token"),
    ],
)
def test_unsafe_headers_are_refused(name: str | bytes, value: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_header(name, value)


@pytest.mark.parametrize(("name", "value"), [("X-A", b"1"), (b"x-a", "1"), ("X-A", 1), (None, "")])
def test_mixed_or_other_types_are_a_type_error(name: object, value: object) -> None:
    with pytest.raises(TypeError):
        check_header(name, value)  # type: ignore[arg-type]


def test_split_header_line() -> None:
    assert split_header_line("Status: 404 Not Found") == ("Status", "404 Not Found")
    assert split_header_line("X-A:1") == ("X-A", "1")
    assert split_header_line("status: 404") == ("status", "404")
    assert split_header_line("Status: 599 Custom") == ("Status", "599 Custom")
    for bad in (
        "Status: ok",
        "Status: 2000",
        "Status: 20",
        "Status: 200OK",
        "Status: 099 x",
        "Status: 100 Continue",
        "Status: 600 x",
        "Status: 999 x",
    ):
        with pytest.raises(ValueError, match="invalid Status"):
            split_header_line(bad)
    assert split_header_line("X-Url:  http://h/p?a=b:c  ") == ("X-Url", "http://h/p?a=b:c")
    with pytest.raises(ValueError, match="header line contains a control character"):
        split_header_line("X-A: 1\r\nSet-Cookie: pwn=1")
    with pytest.raises(ValueError, match="without ':'"):
        split_header_line("no colon here")
    with pytest.raises(ValueError, match="must be a token"):
        split_header_line("X A: 1")
    with pytest.raises(TypeError, match="must be str, not bytes"):
        split_header_line(b"X-A: 1")


def test_check_status_takes_final_statuses_only() -> None:
    for code in (200, 204, 404, 599):
        check_status(code)
    for code in (-1, 0, 99, 100, 101, 199, 600, 999, 1000):
        with pytest.raises(ValueError, match="200-599"):
            check_status(code)
