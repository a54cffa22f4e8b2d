"""The per-request work an async classic hello is spared, and that skipping it changes nothing:
header lines are checked once per distinct line (a refused one every time), and the form and
session steps run only for requests that have a body or a session. Served over a unix socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smisk.core import Application, Request, http_response
from smisk.core.headers import split_header_line
from smisk.runtime.handler import ApplicationHandler
from smisk.sessions import MemorySessionStore
from tests.support.fcgi_client import FastCGIClient
from tests.support.serving import ServerThread


class Hello(Application):
    sessions_class = MemorySessionStore

    async def service(self) -> None:
        route = self.request.env["SCRIPT_NAME"]
        if route == "/bad":
            self.response.headers = ["X-A: 1\x7f"]
            self.response("never sent")
            return
        elif route == "/form":
            self.response.headers = ["Content-Type: text/plain"]
            self.response(repr(sorted(self.request.post.items())))
            return
        elif route == "/session":
            await self.request.load_session()
            self.request.session = "kept"
        self.response.headers = ["Content-Type: text/plain", "X-Hot: 1", "Set-Cookie: token=s3cret"]
        self.response("Hello World!")


@pytest.fixture
def address(sockdir: Path) -> Iterator[str]:
    handler = ApplicationHandler(Hello())
    with ServerThread(handler, [str(sockdir / "hot.sock")]) as server:
        yield server.addresses[0]
    handler.close()


def _get(client: FastCGIClient, route: str, **kwargs: Any) -> tuple[dict[str, str], bytes]:
    params = {"SCRIPT_NAME": route, "REQUEST_URI": route} | kwargs.pop("params", {})
    return client.request(params=params, **kwargs).split()


def test_a_header_line_is_checked_once(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []

    def counting(line: str) -> tuple[str, str]:
        checked.append(line)
        return split_header_line(line)

    monkeypatch.setattr(http_response, "split_header_line", counting)
    http_response._checked_line.cache_clear()
    with FastCGIClient(address) as client:
        for _ in range(3):
            headers, body = _get(client, "/")
            assert (headers["content-type"], headers["x-hot"], body) == (
                "text/plain",
                "1",
                b"Hello World!",
            )
    # Set-Cookie lines carry secrets: checked every time, never kept in the cache
    assert sorted(checked) == [
        "Content-Type: text/plain",
        *["Set-Cookie: token=s3cret"] * 3,
        "X-Hot: 1",
    ]
    assert http_response._checked_line.cache_info().currsize == 2  # the two other lines


def test_a_refused_header_line_is_refused_every_time(address: str) -> None:
    with FastCGIClient(address) as client:
        for _ in range(2):
            headers, body = _get(client, "/bad")
            assert headers["status"].startswith("500")
            assert b"control character" in body
        headers, body = _get(client, "/")  # the server keeps serving
        assert body == b"Hello World!"


def test_no_form_or_session_step_without_a_body_or_session(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    load_form, finish = Request._aload_form, Request._afinish

    async def counting_load(self: Request) -> None:
        steps.append("form")
        await load_form(self)

    async def counting_finish(self: Request) -> None:
        steps.append("session")
        await finish(self)

    monkeypatch.setattr(Request, "_aload_form", counting_load)
    monkeypatch.setattr(Request, "_afinish", counting_finish)
    with FastCGIClient(address) as client:
        assert _get(client, "/")[1] == b"Hello World!"
        assert steps == []
        form = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"}
        assert _get(client, "/form", params=form, body=b"a=1&b=2")[1] == b"[('a', '1'), ('b', '2')]"
        assert steps == ["form"]
        headers, body = _get(client, "/session")
        assert body == b"Hello World!" and "set-cookie" in headers
        assert steps == ["form", "session"]
