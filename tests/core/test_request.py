"""Request: env, url, get, cookies, referring_url, method, is_active, log_error, input and the
custom request/response classes. Each test runs with a sync and an async service; params that
nginx cannot produce (duplicates, HTTPS variants) are sent with the test FastCGI client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smisk.core import Request
from tests.core.conftest import Web
from tests.support.fcgi_client import begin_record, params_records, stdin_records


def info(web: Web, path: str = "/info", **kwargs: Any) -> dict[str, Any]:
    status, _, body = web.get(path, **kwargs)
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def raw_info(web: Web, params: dict[str, str] | list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """GET /info with exactly ``params`` (plus SCRIPT_NAME when given as a dict)."""
    if isinstance(params, dict):
        params = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/info"} | params
    with web.fcgi() as client:
        client.send(begin_record(1) + params_records(1, params) + stdin_records(1, b""))
        _headers, body = client.read_response(1).split()
    return json.loads(body)  # type: ignore[no-any-return]


def test_get_method_and_repeated_keys(web: Web) -> None:
    result = info(web, "/info?a=1&a=2&a=3&b=x+y&c=&d&e=%C3%A5")
    assert result["method"] == "GET"
    assert result["get"] == {"a": ["1", "2", "3"], "b": "x y", "c": "", "d": None, "e": "\u00e5"}
    assert info(web, "/info", body=b"x=1", headers={"Content-Type": "text/plain"})["method"] == (
        "POST"
    )


def test_url_rebuilt_under_nginx(web: Web) -> None:
    result = info(web, "/info?q=1")
    assert result["url"] == f"http://127.0.0.1:{web.port}/info?q=1"
    assert result["url_parts"] == ["http", None, "127.0.0.1", web.port, "/info", "q=1"]
    secure = info(web, "/https/info")
    assert secure["url_parts"][0] == "https"
    assert secure["url"].startswith("https://")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {
                "SERVER_NAME": "h.example:8443",
                "SERVER_PORT": "443",
                "HTTPS": "on",
                "QUERY_STRING": "a=1",
                "REMOTE_USER": "bob",
                "SCRIPT_NAME": "/in",
                "PATH_INFO": "fo",
            },
            (
                "https://bob@h.example:8443/info?a=1",
                ["https", "bob", "h.example", 8443, "/info", "a=1"],
            ),
        ),
        (
            {"HTTP_HOST": "example.com:8080", "SERVER_NAME": "internal", "SERVER_PORT": "80"},
            ("http://example.com:8080/info", ["http", None, "example.com", 8080, "/info", None]),
        ),
        (
            {"HTTP_HOST": "example.com", "SERVER_NAME": "internal", "SERVER_PORT": "8000"},
            ("http://example.com:8000/info", ["http", None, "example.com", 8000, "/info", None]),
        ),
        (
            {"HTTP_HOST": "[::1]:8080", "SERVER_PORT": "80"},
            ("http://[::1]:8080/info", ["http", None, "[::1]", 8080, "/info", None]),
        ),
        (
            {"SERVER_NAME": "s", "SERVER_PORT": "80", "HTTPS": "off"},
            ("http://s/info", ["http", None, "s", 80, "/info", None]),
        ),
        (
            {"SERVER_NAME": "s", "SERVER_PORT": "443", "HTTPS": "ON"},
            ("https://s:443/info", ["https", None, "s", 443, "/info", None]),
        ),
        (
            {"SERVER_NAME": "s", "REQUEST_SCHEME": "https"},
            ("https://s/info", ["https", None, "s", 0, "/info", None]),
        ),
    ],
)
def test_url_rebuilt_from_params(web: Web, params: dict[str, str], expected: Any) -> None:
    result = raw_info(web, params)
    assert (result["url"], result["url_parts"]) == expected


def test_url_from_request_uri_without_script_name(web: Web) -> None:
    params = [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/info"),  # routing needs it; the URL check below uses a 2nd request
    ]
    assert raw_info(web, params)["url_parts"][4] == "/info"
    from smisk.core.http_request import _url_from_env

    url = _url_from_env({"REQUEST_URI": "/a%20b/c?x=1&y", "SERVER_NAME": "h"})
    assert (url.path, url.query) == ("/a b/c", "x=1&y")


def test_http_proxy_never_exposed(web: Web) -> None:
    through_nginx = info(web, headers={"Proxy": "http://evil.example:3128"})
    assert through_nginx["env_has_proxy"] is False
    direct = raw_info(web, {"HTTP_PROXY": "http://evil.example:3128"})
    assert direct["env_has_proxy"] is False


def test_duplicate_http_params_are_merged(web: Web) -> None:
    params = [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/info"),
        (b"HTTP_X_A", b"1"),
        (b"HTTP_X_A", b"2"),
        (b"HTTP_COOKIE", b"a=1"),
        (b"HTTP_COOKIE", b"b=2"),
    ]
    result = raw_info(web, params)
    assert result["env"]["HTTP_X_A"] == "1, 2"
    assert result["cookies"] == {"a": "1", "b": "2"}


def test_headers_become_http_params(web: Web) -> None:
    result = info(web, headers={"X-Trace": "abc", "X-A": "1"})
    assert result["env"]["HTTP_X_TRACE"] == "abc"
    assert result["server_software"].startswith("nginx/")  # not rewritten with a version


def test_cookies_parsed_leniently(web: Web) -> None:
    header = 'a=1; b=x+y%20z;  c="quoted"; a=2; =nok; d; e=%FF; $Version=1'
    assert info(web, headers={"Cookie": header})["cookies"] == {
        "a": ["1", "2"],
        "b": "x y z",
        "c": '"quoted"',
        "d": None,
        "e": "\u00ff",
        "$Version": "1",
    }


def test_referring_url(web: Web) -> None:
    assert info(web)["referring_url"] is None
    result = info(web, headers={"Referer": "http://ref.example/page?x=1"})
    assert result["referring_url"] == "http://ref.example/page?x=1"


def test_is_active_during_service(web: Web) -> None:
    assert info(web)["is_active"] is True


def test_proxies_and_app_resolve_to_the_serving_objects(web: Web) -> None:
    result = info(web)
    assert result["app_is_serving_app"] is True
    assert result["proxies"] is True


def test_custom_request_and_response_classes_init_per_request(web: Web) -> None:
    result = info(web, headers={"User-Agent": "Mozilla/4.0 (compatible; MSIE 6.0)"})
    assert result["request_class"] == "AppRequest"
    assert result["response_class"] == "AppResponse"
    assert result["init_calls"] == [1, 1]  # a fresh object, __init__ run, for every request
    assert result["ie"] is True
    assert info(web)["ie"] is False


def test_limit_defaults(web: Web) -> None:
    assert info(web)["limits"] == [10737418, 2147483648]
    assert Request.max_formdata_size == 10737418
    assert Request.max_multipart_size == 2147483648


def test_log_error_reaches_the_front_end(web: Web) -> None:
    status, _, body = web.get("/log?tag=through-nginx")
    assert (status, body) == (200, b"logged")
    assert "hello log through-nginx" in web.nginx.error_log()
    with web.fcgi() as client:
        response = client.request(params={"SCRIPT_NAME": "/log", "QUERY_STRING": "tag=direct"})
    lines = bytes(response.stderr).decode().splitlines()
    assert lines[0].endswith("] hello log direct")
    assert "[" in lines[0]  # program[pid] prefix


def test_log_error_outside_a_request() -> None:
    with pytest.raises(OSError, match=r"(?i)only makes sense during an active request"):
        Request().log_error("x")
    with pytest.raises(TypeError):
        Request().log_error(5)  # type: ignore[arg-type]


# -- raw input -------------------------------------------------------------------------------


def test_raw_json_body(web: Web) -> None:
    body = b'{"Url": "http://example.com/", "Position": [125, "100"]}'
    status, _, out = web.get("/json", body=body, headers={"Content-Type": "application/json"})
    assert status == 200
    assert json.loads(out)["decoded"] == {"Url": "http://example.com/", "Position": [125, "100"]}


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_other_bodies_stay_in_input(web: Web, content_type: str | None) -> None:
    payload = bytes(range(256)) * 100  # 25600 bytes: more than the original's 8192 default read
    headers = {"Content-Type": content_type} if content_type else {}
    _status, _, out = web.get("/raw", body=payload, headers=headers)
    result = json.loads(out)
    assert result["body"].encode("latin-1") == payload
    assert result["post"] == {} and result["files"] == []


@pytest.mark.parametrize("how", ["readlines", "iter"])
def test_line_reads(web: Web, how: str) -> None:
    body = b"first line\nabcdef\nghij-rest\nline 4\nlast no newline"
    status, _, out = web.get(f"/lines?how={how}", body=body, headers={"Content-Type": "text/plain"})
    assert status == 200
    assert json.loads(out) == {
        "first": "first line\n",
        "limited": "abc",
        "some": "def\n",
        "rest": ["ghij-rest\n", "line 4\n", "last no newline"],
        "eof": ["", "", ""],
    }


def test_iterating_the_request_iterates_input(web: Web) -> None:
    _, _, out = web.get("/iter_request", body=b"a\nb\n", headers={"Content-Type": "text/plain"})
    assert json.loads(out) == {"lines": ["a\n", "b\n"]}


def test_empty_body_reads(web: Web) -> None:
    _, _, out = web.get("/raw")
    assert json.loads(out)["body"] == ""
