"""Application: the classic names, attributes, lifecycle (run, exit, hooks) and bind/listening.
Request-level behaviour runs with a sync and an async service."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smisk
import smisk.core
from smisk.core import Application, Request, Response, bind, listening, unbind
from smisk.runtime.handler import ApplicationHandler
from tests.core.conftest import Web
from tests.support.nginx import Nginx
from tests.support.serving import ROOT, ServerThread

CLASSIC_NAMES = [
    "Application",
    "Request",
    "Response",
    "Stream",
    "URL",
    "InvalidSessionError",
    "Error",
    "IOError",
    "app",
    "request",
    "response",
    "bind",
    "unbind",
    "listening",
    "uid",
    "pack",
    "object_hash",
    "xml",
    "__build__",
]


def test_classic_names_exist() -> None:
    for name in CLASSIC_NAMES:
        assert hasattr(smisk.core, name), name
    star: dict[str, Any] = {}
    exec("from smisk.core import *", star)
    for name in ("Application", "Request", "Response", "URL", "app", "request", "response"):
        assert name in star


def test_application_attributes() -> None:
    for name in (
        "current",
        "forks",
        "request_class",
        "response_class",
        "sessions_class",
        "request",
        "response",
        "sessions",
        "show_traceback",
        "charset",
        "run",
        "service",
        "error",
        "exit",
        "application_will_start",
        "application_did_stop",
    ):
        assert hasattr(Application, name), name
    assert Application.forks == 0
    assert Application.request_class is Request
    assert Application.response_class is Response
    assert Application.show_traceback is True
    assert Application.charset == "utf-8"
    for name in (
        "env",
        "get",
        "post",
        "files",
        "cookies",
        "input",
        "errors",
        "url",
        "session",
        "session_id",
        "is_active",
        "referring_url",
        "method",
        "max_multipart_size",
        "max_formdata_size",
        "log_error",
    ):
        assert hasattr(Request, name), name
    for name in (
        "headers",
        "out",
        "has_begun",
        "begin",
        "__call__",
        "write",
        "writelines",
        "find_header",
        "set_cookie",
        "send_file",
    ):
        assert name in dir(Response()), name


def test_current_is_the_newest_application() -> None:
    previous = Application.current

    class NoInit(Application):
        def __init__(self) -> None:  # forgets to call Application.__init__: still registered
            pass

    try:
        first = Application("ignored", key="ignored")
        assert Application.current is first
        second = NoInit()
        assert Application.current is second
        assert smisk.core.app == second and smisk.app == second
        assert repr(first).startswith("<smisk.core.Application object at 0x")
    finally:
        Application.current = previous


def test_request_template_outside_a_request() -> None:
    """Outside a request, ``app.request`` is a template every request copies its limits from
    (the documented place to set them is ``application_will_start``)."""
    previous = Application.current
    try:
        instance = Application()
        instance.request.max_formdata_size = 1234
        assert instance.request.max_formdata_size == 1234
        assert smisk.core.request.max_formdata_size == 1234
        assert instance.response.has_begun is False
    finally:
        Application.current = previous


def test_charset_encodes_output_and_decodes_input(web: Web, the_app: Application) -> None:
    try:
        the_app.charset = "latin-1"
        _status, headers, body = web.get("/charset?q=%E5")
        assert headers["content-type"] == "text/plain; charset=latin-1"
        assert body == "\u00e5\u00e4\u00f6 '\u00e5'".encode("latin-1")
    finally:
        the_app.charset = "utf-8"
    assert web.get("/charset?q=%C3%A5")[2] == "\u00e5\u00e4\u00f6 '\u00e5'".encode()


def test_default_service_placeholder_page(tmp_path: Path) -> None:
    previous = Application.current
    sock = tempfile.mktemp(prefix="smisk-", suffix=".sock", dir="/tmp")
    try:
        plain = Application()
        handler = ApplicationHandler(plain)
        with ServerThread(handler, [sock]) as server, Nginx(tmp_path, server.addresses) as ng:
            status, headers, body = ng.get("/")
        handler.close()
    finally:
        Application.current = previous
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert (
        body
        == (
            f"<html><head><title>Smisk instance #{os.getpid()}</title></head><body>"
            f"<h1>Smisk instance #{os.getpid()}</h1>\nNo services available</body></html>\n"
        ).encode()
    )


# -- bind / unbind / listening ---------------------------------------------------------------


@pytest.fixture
def unbound() -> Iterator[None]:
    unbind()
    yield
    unbind()


def test_bind_listening_unbind(unbound: None) -> None:
    assert listening() is None
    bind(":0")
    address = listening()
    assert address is not None and address.startswith("*:") and int(address[2:]) > 0
    with pytest.raises(smisk.core.IOError, match="already bound"):
        bind(":0")
    with pytest.raises(OSError):  # the classic `except IOError` catches it too
        bind(":0")
    unbind()
    assert listening() is None
    unbind()  # no effect when not bound
    bind("localhost:0")
    assert listening().startswith("127.0.0.1:")  # type: ignore[union-attr]
    unbind()


def test_bind_unix_socket_returns_the_full_path(unbound: None) -> None:
    path = tempfile.mktemp(prefix="smisk-long-socket-name-", suffix=".sock", dir="/tmp")
    bind(path)
    try:
        assert listening() == path  # the whole path, not 14 bytes and garbage
        assert os.path.exists(path)
    finally:
        unbind()
    assert not os.path.exists(path)


def test_bind_argument_types(unbound: None) -> None:
    with pytest.raises(TypeError):
        bind(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bind(":0", "x")  # type: ignore[arg-type]


# -- run(), exit() and the lifecycle hooks, in a child process -------------------------------


def _start_child(address: str, mode: str, stdin: Any = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.serve_app", address, mode],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
        cwd=ROOT,
    )


def test_run_serves_until_exit(mode: str, tmp_path: Path) -> None:
    sock = tempfile.mktemp(prefix="smisk-run-", suffix=".sock", dir="/tmp")
    proc = _start_child(sock, mode)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"READY {sock}"
        assert proc.stdout.readline().strip() == "WILL_START"
        with Nginx(tmp_path / "nginx", [sock]) as ng:
            assert ng.get("/hello")[2] == b"<h1>Hello World!</h1>"
            status, _, body = ng.get("/exit")
            assert (status, body) == (200, b"bye")  # the current request completes
        assert proc.wait(30) == 0
        rest = proc.stdout.read().split("\n")
        assert rest[:2] == ["DID_STOP", "STOPPED None"]  # run() returned; unbound
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_run_outside_fastcgi_environment() -> None:
    code = (
        "from smisk.core import Application\n"
        "try:\n    Application().run()\n"
        "except OSError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "ERR Application must be run in a FastCGI environment"
