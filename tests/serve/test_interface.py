"""smisk-serve --interface: WSGI and ASGI applications served like smisk ones (auto-detected)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.serve.support import ServeProcess, fcgi_get, run_cli

APPS = """
import os

def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi path={environ['PATH_INFO']} script={environ['SCRIPT_NAME']} pid={os.getpid()}".encode()]

events = []

async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = f"asgi path={scope['path']} root={scope['root_path']} lifespan={events} pid={os.getpid()}"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})

async def refusing(scope, receive, send):
    message = await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})

not_an_app = 42
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "ifaces.py").write_text(textwrap.dedent(APPS))
    return tmp_path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_wsgi_app_is_detected_and_served(app_dir: Path, workers: str) -> None:
    sock = str(app_dir / "w.sock")
    args = ["ifaces:wsgi_app", "--bind", f"unix:{sock}", "--workers", workers]
    with ServeProcess([*args, "--mount", "/app"], app_dir) as server:
        server.wait_for("ready" if workers == "1" else "worker .* ready|ready", timeout=30)
        body = fcgi_get(sock, "/app/hello")
    assert body.startswith("wsgi path=/hello script=/app ")


def test_asgi_app_runs_its_lifespan(app_dir: Path) -> None:
    sock = str(app_dir / "a.sock")
    with ServeProcess(["ifaces:asgi_app", "--bind", f"unix:{sock}"], app_dir) as server:
        server.wait_for("ready", timeout=30)
        body = fcgi_get(sock, "/x")
    assert body.startswith("asgi path=/x root= lifespan=['lifespan.startup'] ")


def test_asgi_startup_failure_refuses_to_serve(app_dir: Path) -> None:
    sock = str(app_dir / "r.sock")
    result = run_cli(["ifaces:refusing", "--interface", "asgi", "--bind", f"unix:{sock}"], app_dir)
    assert result.returncode != 0
    assert "failed to start" in result.stderr


def test_an_object_of_no_interface_is_one_clear_line(app_dir: Path) -> None:
    result = run_cli(["ifaces:not_an_app", "--bind", f"unix:{app_dir / 'n.sock'}"], app_dir)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "not an Application" in result.stderr
