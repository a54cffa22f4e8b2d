"""What WSGI and ASGI applications get behind a real nginx is what their specs require.

WSGI: the application is wrapped in ``wsgiref.validate.validator``, which asserts on anything
PEP 3333 forbids and warns on what it discourages; both are collected and must stay empty.
ASGI: every key the ASGI 3.0 HTTP connection scope requires is there, with its type.
Requests go through three kinds of nginx location (plain ``fastcgi_params``, Debian's
``snippets/fastcgi-php.conf``, a ``fastcgi_split_path_info`` split) and a ``--mount`` prefix.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from smisk.adapters.asgi import ASGIHandler, build_scope
from smisk.adapters.wsgi import WSGIHandler
from tests.adapters.conftest import Front
from tests.adapters.locations import split_locations

pytestmark = pytest.mark.nginx

# (method, URL, body): under /php/ through the snippet, /app/ split, anything else plain.
REQUESTS = [
    ("GET", "/plain/x?q=1&r=%C3%A5", None),
    ("POST", "/plain/form", b"a=1&b=2"),
    ("GET", "/php/caf%C3%A9/", None),
    ("GET", "/php/a%2Fb", None),
    ("GET", "/app/x/y?z", None),
    ("POST", "/app/", b"x" * 70000),
]
FILES = ["php/café/index.php", "php/a/b"]  # for the snippet's try_files


def send_all(front: Front, handler: Any, tmp_path: Path) -> list[int]:
    nginx, _ = front(handler, split_locations(tmp_path, "/php/", FILES))
    statuses = []
    for _method, url, body in REQUESTS:  # a body makes urllib send a POST
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        status, _, _ = nginx.get(url, data=body, headers=headers)
        statuses.append(status)
    return statuses


# -- WSGI under wsgiref.validate ------------------------------------------------------------------


def reading_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Reads the whole body the way the validator allows (read with a size) and answers."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Length", str(len(body)))])
    return [environ["PATH_INFO"].encode("latin-1"), b" ", str(len(body)).encode()]


class Checked:
    """The validated application; every assertion or warning it raises is kept in ``problems``."""

    def __init__(self) -> None:
        self.app = validator(reading_app)
        self.problems: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = list(self._run(environ, start_response))
            except BaseException as error:
                self.problems.append(repr(error))
                raise
        self.problems += [str(warning.message) for warning in caught]
        return result

    def _run(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        iterable = self.app(environ, start_response)
        try:
            yield from iterable
        finally:
            iterable.close()


@pytest.mark.parametrize("mount", ["", "/app"])
def test_wsgi_environ_passes_the_validator(front: Front, tmp_path: Path, mount: str) -> None:
    checked = Checked()
    statuses = send_all(front, WSGIHandler(checked, script_name=mount), tmp_path)
    assert checked.problems == []
    assert statuses == [200] * len(REQUESTS)


# -- ASGI scope types -------------------------------------------------------------------------------


def check_scope(scope: dict[str, Any]) -> None:
    """Assert every key of the ASGI 3.0 HTTP connection scope, with its type."""
    assert scope["type"] == "http"
    assert isinstance(scope["asgi"], dict) and scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["asgi"].get("spec_version", "2.0"), str)
    assert scope["http_version"] in ("1.0", "1.1", "2")
    assert isinstance(scope["method"], str) and scope["method"] == scope["method"].upper()
    assert scope["scheme"] in ("http", "https")
    assert isinstance(scope["path"], str) and scope["path"].startswith("/")
    assert isinstance(scope["raw_path"], bytes) and b"?" not in scope["raw_path"]
    assert isinstance(scope["query_string"], bytes)
    assert isinstance(scope["root_path"], str)
    assert scope["path"].startswith(scope["root_path"])
    assert isinstance(scope["headers"], list)
    for pair in scope["headers"]:
        assert isinstance(pair, tuple) and len(pair) == 2
        name, value = pair
        assert isinstance(name, bytes) and isinstance(value, bytes) and name == name.lower()
    for key in ("client", "server"):
        address = scope[key]
        if address is not None:
            host, port = address
            assert isinstance(host, str) and (port is None or isinstance(port, int))


class Recorder:
    """An ASGI app that keeps each scope it is called with and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("mount", ["", "/app"])
def test_asgi_scope_has_every_required_key(front: Front, tmp_path: Path, mount: str) -> None:
    recorder = Recorder()
    handler = ASGIHandler(recorder, root_path=mount, lifespan="off")
    assert send_all(front, handler, tmp_path) == [200] * len(REQUESTS)
    assert len(recorder.scopes) == len(REQUESTS)
    for scope in recorder.scopes:
        check_scope(scope)
    plain, _form, php, slash, split, post = recorder.scopes
    assert (plain["path"], plain["raw_path"], plain["query_string"]) == (
        "/plain/x",
        b"/plain/x",
        b"q=1&r=%C3%A5",
    )
    assert (plain["client"][0], plain["server"][0]) == ("127.0.0.1", "127.0.0.1")
    assert isinstance(plain["client"][1], int) and isinstance(plain["server"][1], int)
    assert (php["path"], php["raw_path"], php["root_path"]) == (
        "/php/café/",
        b"/php/caf%C3%A9/",
        "",
    )
    assert (slash["path"], slash["raw_path"]) == ("/php/a/b", b"/php/a%2Fb")
    assert (split["root_path"], split["path"], split["query_string"]) == ("/app", "/app/x/y", b"z")
    assert (b"content-length", b"70000") in post["headers"]


def test_asgi_scope_without_addresses() -> None:
    # A front end that sends neither REMOTE_* nor SERVER_* (a unix-socket client): None.
    scope = build_scope([(b"REQUEST_URI", b"/?a")])
    check_scope(scope)
    assert scope["client"] is None and scope["server"] is None
    assert scope["query_string"] == b"a" and scope["raw_path"] == b"/"
