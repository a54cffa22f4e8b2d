"""Errors: the escaped 500 page, tracebacks, errors after output, a failing ``error()``, header
injection, and the classic exception names. Each test runs with a sync and an async service."""

from __future__ import annotations

import builtins
import re

import pytest

import smisk.core
from smisk.core import Application
from smisk.core.errorpage import error_fragment, error_page
from tests.core.conftest import Web

SCRIPT = '<script>alert("x")</script>'


def test_exception_gives_escaped_500_page(web: Web) -> None:
    status, headers, body = web.get("/fail")
    assert status == 500
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert int(headers["content-length"]) == len(body)
    assert headers["cache-control"] == "no-cache"
    text = body.decode()
    assert text.startswith("<html><head><title>500 Internal Server Error</title>")
    assert "<h1>Service Error</h1>" in text
    assert SCRIPT not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in text
    # Every "<" in the page belongs to the page's own markup.
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", text))
    assert tags <= {"html", "head", "title", "style", "body", "h1", "p", "pre", "hr", "address"}
    assert text.endswith("</body></html>\r\n")


def test_traceback_shown_only_when_enabled(web: Web, web_quiet: Web) -> None:
    _, _, shown = web.get("/fail")
    assert b'<pre class="traceback">Traceback (most recent call last):' in shown
    assert b"r_fail" in shown  # the frame of the failing route
    status, _, hidden = web_quiet.get("/fail")
    assert status == 500
    assert b"Traceback" not in hidden
    assert b"r_fail" not in hidden


def test_page_without_traceback_says_only_the_status(web_quiet: Web) -> None:
    _, _, body = web_quiet.get("/fail")
    text = body.decode()
    assert "<h1>500 Internal Server Error</h1>" in text
    assert "script" not in text and "more" not in text  # the exception's message
    assert "nginx" not in text and "127.0.0.1" not in text and "port" not in text
    assert "<address>" not in text and "<pre" not in text


def test_page_without_traceback_after_output_appends_only_the_status(web_quiet: Web) -> None:
    status, _, body = web_quiet.get("/fail_after_output")
    assert status == 200
    fragment = body.decode().removeprefix("<p>partial output</p>")
    assert fragment == "<h1>500 Internal Server Error</h1>\n"


def test_footer_names_server_escaped(web: Web) -> None:
    _, _, body = web.get("/fail")
    assert re.search(rb"<address>nginx/[\d.]+ smisk at 127\.0\.0\.1 port \d+</address>", body)


def test_next_request_is_served_after_an_error(web: Web) -> None:
    for _ in range(3):
        assert web.get("/fail")[0] == 500
        assert web.get("/hello")[2] == b"<h1>Hello World!</h1>"


def test_headers_set_before_the_error_are_discarded(web: Web) -> None:
    status, headers, _ = web.get("/fail_status")
    assert status == 500
    assert "x-dropped" not in headers


def test_error_after_output_appends_escaped_message(web: Web) -> None:
    status, _headers, body = web.get("/fail_after_output")
    assert status == 200  # the status line had been sent
    text = body.decode()
    assert text.startswith("<p>partial output</p>")
    fragment = text[len("<p>partial output</p>") :]
    assert fragment.startswith("<h1>Service Error</h1>")
    assert "&lt;b&gt;late&lt;/b&gt; failure" in fragment
    assert "<b>" not in fragment
    assert "<html>" not in fragment  # only the fragment, no second page
    assert web.get("/hello")[0] == 200


def test_failing_error_handler_still_gives_500(web: Web) -> None:
    status, _headers, body = web.get("/fail?errorfails=1")
    assert status == 500
    assert body == b"Internal Server Error\n"
    assert web.get("/hello")[0] == 200


def test_failing_error_handler_after_output_ends_cleanly(web: Web) -> None:
    status, _, body = web.get("/fail_after_output?errorfails=1")
    assert status == 200
    assert body.startswith(b"<p>partial output</p>")
    assert web.get("/hello")[0] == 200


@pytest.mark.parametrize("route", ["bad_header_value", "bad_header_name", "bad_header_nul"])
def test_header_with_cr_or_lf_is_refused(web: Web, route: str) -> None:
    status, headers, body = web.get(f"/{route}")
    assert status == 500
    assert "x-injected" not in headers
    assert "x-bad" not in headers
    assert b"never-sent" not in body
    assert b"header line contains a control character" in body


def test_error_page_functions_escape_everything() -> None:
    fragment = error_fragment("<h>", "<m>", "<d>", "<s>", "<host>", "<p>")
    assert "<h>" not in fragment and "&lt;h&gt;" in fragment
    for raw in ("<m>", "<d>", "<s>", "<host>", "<p>"):
        assert raw not in fragment
    assert "<title>&lt;t&gt;</title>" in error_page("<t>", fragment)


def test_show_traceback_default_and_truthiness(web: Web, the_app: Application) -> None:
    assert Application.show_traceback is True  # documented default
    previous = the_app.show_traceback
    try:
        the_app.show_traceback = 1  # truthy counts (the original wanted `is True`)
        assert b"Traceback (most recent call last)" in web.get("/fail")[2]
        the_app.show_traceback = 0
        assert b"Traceback" not in web.get("/fail")[2]
    finally:
        the_app.show_traceback = previous


def test_classic_exception_names() -> None:
    assert issubclass(smisk.core.Error, Exception)
    assert issubclass(smisk.core.IOError, smisk.core.Error)
    assert issubclass(smisk.core.IOError, builtins.OSError)  # `except IOError` still catches
    assert issubclass(smisk.core.InvalidSessionError, ValueError)
    with pytest.raises(OSError):
        raise smisk.core.IOError("x")
