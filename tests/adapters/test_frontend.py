"""Front-end normalisation and the environ/scope builders, without a server."""

from __future__ import annotations

import pytest

from smisk.adapters.asgi import build_scope
from smisk.adapters.wsgi import build_environ
from smisk.core.frontend import (
    ROOT_MOUNT,
    merge_params,
    mount_prefix,
    request_path,
    split_path,
    url_scheme,
)

NGINX_PARAMS = [
    (b"QUERY_STRING", b"a=1&b=%C3%A5"),
    (b"REQUEST_METHOD", b"POST"),
    (b"CONTENT_TYPE", b"text/plain"),
    (b"CONTENT_LENGTH", b"5"),
    (b"SCRIPT_NAME", b"/caf\xc3\xa9/x y"),
    (b"REQUEST_URI", b"/caf%C3%A9/x%20y?a=1&b=%C3%A5"),
    (b"DOCUMENT_URI", b"/caf\xc3\xa9/x y"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"40000"),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_NAME", b"example.org"),
    (b"HTTP_HOST", b"example.org"),
    (b"HTTP_X_DUP", b"one"),
    (b"HTTP_COOKIE", b"a=1"),
    (b"HTTP_PROXY", b"http://evil"),
    (b"HTTP_CONTENT_TYPE", b"text/plain"),
    (b"HTTP_X_DUP", b"two"),
    (b"HTTP_COOKIE", b"b=2"),
]


def test_merge_joins_duplicate_headers_and_drops_proxy() -> None:
    env = merge_params(NGINX_PARAMS)
    assert env[b"HTTP_X_DUP"] == b"one, two"
    assert env[b"HTTP_COOKIE"] == b"a=1; b=2"
    assert b"HTTP_PROXY" not in env


def test_merge_later_non_header_param_wins() -> None:
    assert merge_params([(b"A", b"1"), (b"A", b"2")]) == {b"A": b"2"}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", b""), ("/", ROOT_MOUNT), ("//", ROOT_MOUNT), ("/app/", b"/app"), ("app", b"/app")],
)
def test_mount_prefix(prefix: str, expected: bytes) -> None:
    assert mount_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        (b"/a/b?x=1", b"/a/b"),
        (b"/a%2Fb", b"/a%2Fb"),
        (b"http://host:81/p?q", b"/p"),
        (b"https://host", b"/"),
        (b"", b""),
    ],
)
def test_request_path(uri: bytes, path: bytes) -> None:
    assert request_path({b"REQUEST_URI": uri}) == path


def test_split_unsplit_front_end_takes_the_whole_path() -> None:
    env = {b"SCRIPT_NAME": b"/a b", b"REQUEST_URI": b"/a%20b?q"}
    assert split_path(env) == (b"", b"/a b", b"/a%20b")


def test_split_with_mount_prefix() -> None:
    env = {b"SCRIPT_NAME": b"/app/x", b"REQUEST_URI": b"/app/x"}
    assert split_path(env, b"/app") == (b"/app", b"/x", b"/app/x")
    assert split_path({b"REQUEST_URI": b"/app"}, b"/app") == (b"/app", b"", b"/app")
    assert split_path({b"REQUEST_URI": b"/apple"}, b"/app") == (b"", b"/apple", b"/apple")


def test_split_keeps_a_front_end_split() -> None:
    env = {b"SCRIPT_NAME": b"/app.fcgi", b"PATH_INFO": b"/x", b"REQUEST_URI": b"/app.fcgi/x"}
    assert split_path(env) == (b"/app.fcgi", b"/x", b"/app.fcgi/x")


def test_split_without_request_uri() -> None:
    env = {b"SCRIPT_NAME": b"/s", b"PATH_INFO": b"/a b"}
    assert split_path(env) == (b"/s", b"/a b", b"/s/a%20b")
    assert split_path({b"SCRIPT_NAME": b"/a b"}) == (b"", b"/a b", b"/a%20b")


@pytest.mark.parametrize(
    ("env", "scheme"),
    [
        ({}, "http"),
        ({b"HTTPS": b"on"}, "https"),
        ({b"HTTPS": b"off", b"REQUEST_SCHEME": b"http"}, "http"),
        ({b"REQUEST_SCHEME": b"HTTPS"}, "https"),
    ],
)
def test_url_scheme(env: dict[bytes, bytes], scheme: str) -> None:
    assert url_scheme(env) == scheme


def test_environ_is_latin1_bytes_as_str() -> None:
    environ = build_environ(NGINX_PARAMS)
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/caf\xc3\xa9/x y"  # UTF-8 bytes, each as one latin-1 char
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/x y"
    assert environ["QUERY_STRING"] == "a=1&b=%C3%A5"
    assert environ["HTTP_X_DUP"] == "one, two"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_PROXY" not in environ and "HTTP_CONTENT_TYPE" not in environ
    assert environ["wsgi.url_scheme"] == "http"


def test_environ_drops_empty_content_headers_and_fills_required_keys() -> None:
    environ = build_environ([(b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b"")], "/m")
    assert "CONTENT_TYPE" not in environ and "CONTENT_LENGTH" not in environ
    assert environ["REQUEST_METHOD"] == "GET" and environ["QUERY_STRING"] == ""
    assert environ["SERVER_NAME"] and environ["SERVER_PORT"] and environ["SERVER_PROTOCOL"]


def test_scope_from_nginx_params() -> None:
    scope = build_scope(NGINX_PARAMS)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/x y"
    assert scope["raw_path"] == b"/caf%C3%A9/x%20y"
    assert scope["root_path"] == ""
    assert scope["query_string"] == b"a=1&b=%C3%A5"
    assert scope["client"] == ("127.0.0.1", 40000)
    assert scope["server"] == ("127.0.0.1", 8080)
    headers = scope["headers"]
    assert (b"x-dup", b"one, two") in headers
    assert (b"cookie", b"a=1; b=2") in headers
    assert (b"content-type", b"text/plain") in headers
    assert (b"content-length", b"5") in headers
    assert [name for name, _ in headers].count(b"content-type") == 1
    assert all(name == name.lower() for name, _ in headers)
    assert not any(name == b"proxy" for name, _ in headers)


def test_scope_root_path_is_part_of_path() -> None:
    scope = build_scope([(b"REQUEST_URI", b"/api/items?x=1")], root_path="/api")
    assert scope["root_path"] == "/api" and scope["path"] == "/api/items"
    assert scope["query_string"] == b"x=1"  # from REQUEST_URI when QUERY_STRING is missing
    assert scope["client"] is None


@pytest.mark.parametrize(("protocol", "version"), [(b"HTTP/1.0", "1.0"), (b"HTTP/2.0", "2")])
def test_scope_http_version(protocol: bytes, version: str) -> None:
    assert build_scope([(b"SERVER_PROTOCOL", protocol)])["http_version"] == version
