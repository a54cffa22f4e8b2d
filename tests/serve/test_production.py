"""Production mode: smisk-serve without --debug shows clients only the status of an error (the
log keeps the traceback); --debug, --env development, SMISK_ENV or SMISK_DEBUG show tracebacks.
Warnings for sockets other machines reach: smisk-serve without an allow-list, and the classic
``Application.run()`` with tracebacks on."""

from __future__ import annotations

import asyncio
import logging
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import smisk
import smisk.core.listen
from smisk.cli import _warn_unauthenticated, build_parser, config_from
from smisk.core import Application
from smisk.runtime import allocator
from smisk.runtime.mode import DEVELOPMENT, PRODUCTION
from smisk.server import Listener
from smisk.server.listener import Address
from tests.serve.support import ServeProcess, run_cli, smisk_env
from tests.support.fcgi_client import FastCGIClient

SECRET = "/srv/app/secrets/db.key"

APP_SOURCE = f'''
from smisk.core import Application

class App(Application):
    def service(self):
        if self.request.url.path == "/fail":
            open("{SECRET}")
        self.response("ok\\n")

class Shown(App):
    show_traceback = True

class Hidden(App):
    show_traceback = False

def wsgi(environ, start_response):
    open("{SECRET}")

async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({{"type": "lifespan.startup.complete"}})
        await send({{"type": "lifespan.shutdown.complete"}})
        return
    open("{SECRET}")
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "failing.py").write_text(textwrap.dedent(APP_SOURCE))
    return tmp_path


def get(sock: str, path: str) -> tuple[dict[str, str], str]:
    with FastCGIClient(sock, timeout=30) as client:
        env = {"REQUEST_URI": path, "SCRIPT_NAME": path, "SERVER_SOFTWARE": "nginx/1.24.0"}
        headers, body = client.request(params=env, keep_conn=False).split()
    return headers, body.decode()


def serve_failing(app_dir: Path, attr: str, *args: str, **env: str) -> tuple[ServeProcess, str]:
    sock = str(app_dir / "app.sock")
    command = [f"failing:{attr}", "--bind", f"unix:{sock}", *args]
    return ServeProcess(command, app_dir, env=smisk_env(**env)), sock


# -- the error page ------------------------------------------------------------------------------


@pytest.mark.parametrize("attr", ["App", "Shown", "wsgi", "asgi"])
def test_production_by_default_the_page_says_only_the_status(app_dir: Path, attr: str) -> None:
    server, sock = serve_failing(app_dir, attr)
    with server:
        server.wait_for("ready: serving")
        headers, body = get(sock, "/fail")
        assert headers["status"] == "500 Internal Server Error"
        assert "Internal Server Error" in body
        for leak in ("secrets", "db.key", "Traceback", "FileNotFoundError", "nginx", "failing"):
            assert leak not in body, (leak, body)
        if attr in ("wsgi", "asgi"):  # and it keeps serving
            assert get(sock, "/fail")[0]["status"] == "500 Internal Server Error"
        else:
            assert get(sock, "/ok")[1] == "ok\n"
        server.wait_for(r"Traceback \(most recent call last\)")  # the log keeps everything
        server.wait_for(f"No such file or directory: '{SECRET}'")
    assert "development mode" not in server.log


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--debug"], {}),
        (["--env", "development"], {}),
        ([], {"SMISK_ENV": "development"}),
        ([], {"SMISK_DEBUG": "1"}),
        (["--debug"], {"SMISK_ENV": "production"}),  # the command line wins
    ],
)
def test_development_shows_the_traceback(
    app_dir: Path, args: list[str], env: dict[str, str]
) -> None:
    server, sock = serve_failing(app_dir, "App", *args, **env)
    with server:
        server.wait_for("development mode: error pages show tracebacks")
        headers, body = get(sock, "/fail")
        assert headers["status"] == "500 Internal Server Error"
        assert "Traceback (most recent call last)" in body and SECRET in body


def test_development_keeps_an_application_that_hides_tracebacks(app_dir: Path) -> None:
    server, sock = serve_failing(app_dir, "Hidden", "--debug")
    with server:
        server.wait_for("ready: serving")
        body = get(sock, "/fail")[1]
        assert "Traceback" not in body and "secrets" not in body


def test_env_production_explicitly(app_dir: Path) -> None:
    server, sock = serve_failing(app_dir, "Shown", "--env", "production", SMISK_DEBUG="1")
    with server:
        server.wait_for("ready: serving")
        body = get(sock, "/fail")[1]
        assert "Traceback" not in body and "secrets" not in body


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--debug", "--env", "production"], {}, "--debug contradicts --env production"),
        (["--env", "staging"], {}, "--env"),
        ([], {"SMISK_ENV": "staging"}, "SMISK_ENV"),
    ],
)
def test_a_bad_environment_is_one_line(
    app_dir: Path, args: list[str], env: dict[str, str], fragment: str
) -> None:
    sock = f"unix:{app_dir / 'x.sock'}"
    result = run_cli(["failing:App", "--bind", sock, *args], app_dir, **env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def test_the_mode_and_status_allow_from_options_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert config_from(build_parser().parse_args(["m:App"])).env == PRODUCTION
    assert config_from(build_parser().parse_args(["m:App", "--debug"])).env == DEVELOPMENT
    args = ["m:App", "--status-allow", "10.0.0.0/8", "--status-allow", "unix"]
    assert config_from(build_parser().parse_args(args)).ops().status_allow == "10.0.0.0/8,unix"
    monkeypatch.setenv("SMISK_ENV", "development")
    monkeypatch.setenv("SMISK_STATUS_ALLOW", "192.0.2.0/24")
    config = config_from(build_parser().parse_args(["m:App"]))
    assert (config.env, config.status_allow) == (DEVELOPMENT, "192.0.2.0/24")


async def test_embedded_server_applies_the_mode(tmp_path: Path) -> None:
    class Failing(Application):
        def service(self) -> None:
            raise OSError(f"cannot read {SECRET}")

    sock = str(tmp_path / "e.sock")
    app = Failing()
    async with smisk.serve(app, bind=f"unix:{sock}", env="production"):
        assert app.show_traceback is False
        body = (await _aget(sock))[1]
        assert "500 Internal Server Error" in body and SECRET not in body
    with pytest.raises(ValueError, match="staging"):
        smisk.serve(Failing(), bind=f"unix:{sock}", env="staging")


async def _aget(sock: str) -> tuple[dict[str, str], str]:
    return await asyncio.to_thread(get, sock, "/fail")


# -- warnings for sockets other machines reach ---------------------------------------------------


@pytest.fixture
def wildcard() -> Iterator[Listener]:
    """A TCP socket that reports the wildcard address (never bound: nothing listens on it)."""
    sock = socket.socket()
    yield Listener(sock, Address("tcp", "", 0))
    sock.close()


@pytest.fixture
def loopback() -> Iterator[Listener]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening
    yield Listener(sock, Address("tcp", "127.0.0.1", 0))
    sock.close()


def test_address_locality() -> None:
    assert Address("unix", path="/run/a.sock").is_local
    for host in ("127.0.0.1", "127.3.2.1", "::1", "localhost", "::ffff:127.0.0.1"):
        assert Address("tcp", host, 5000).is_local, host
    for host in ("", "0.0.0.0", "::", "10.0.0.1", "2001:db8::1", "app.example"):
        assert not Address("tcp", host, 5000).is_local, host


def test_serve_warns_about_a_public_socket_without_an_allow_list(
    wildcard: Listener,
    loopback: Listener,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("FCGI_WEB_SERVER_ADDRS", "SMISK_ALLOW_FROM"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket(socket.AF_UNIX) as unix, caplog.at_level(logging.WARNING, logger="smisk"):
        _warn_unauthenticated([loopback, Listener(unix, Address("unix", path="/x"))])
        assert not caplog.records
        _warn_unauthenticated([wildcard])
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "0.0.0.0:0 is reachable from other machines" in message
    assert "REMOTE_USER" in message and "--allow-from" in message
    caplog.clear()
    for name in ("FCGI_WEB_SERVER_ADDRS", "SMISK_ALLOW_FROM"):
        monkeypatch.setenv(name, "10.0.0.2")
        with caplog.at_level(logging.WARNING, logger="smisk"):
            _warn_unauthenticated([wildcard])
        assert not caplog.records
        monkeypatch.delenv(name)


class _Started(Exception):
    """Raised by application_will_start: run() got past its checks."""


class _StopAtStart(Application):
    def application_will_start(self) -> None:
        raise _Started


@pytest.mark.parametrize(
    ("show_traceback", "public", "warned"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_run_warns_when_tracebacks_reach_other_machines(
    show_traceback: bool,
    public: bool,
    warned: bool,
    wildcard: Listener,
    loopback: Listener,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _StopAtStart()
    app.show_traceback = show_traceback
    monkeypatch.setattr(allocator, "tune", lambda keep: None)  # not this test process's malloc
    monkeypatch.setattr(smisk.core.listen, "_bound", wildcard if public else loopback)
    with caplog.at_level(logging.WARNING, logger="smisk"), pytest.raises(_Started):
        app.run()
    lines = [r.getMessage() for r in caplog.records if "show_traceback is on" in r.getMessage()]
    assert len(lines) == (1 if warned else 0), caplog.text
    assert Application.show_traceback is True  # the classic default is unchanged
