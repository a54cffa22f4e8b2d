"""Helpers for the operations tests: gated applications (handlers that block until the test
lets them go, so saturation is reached by readiness, never by sleeping) and a FastCGI client
run off the loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import smisk
from smisk.core import Application
from smisk.runtime.ops import OpsConfig
from tests.support.fcgi_client import FastCGIClient, Response
from tests.support.serving import wait_until

GATE_TIMEOUT = 20.0  # a forgotten gate cannot hang the suite


class Gate:
    """Handlers block in ``wait()`` until ``open()``; ``entered`` counts those that arrived."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            self.entered += 1
        self.event.wait(GATE_TIMEOUT)

    def open(self) -> None:
        self.event.set()

    def wait_entered(self, count: int) -> None:
        wait_until(lambda: self.entered >= count, what=f"{count} handlers in the gate")


class GatedApp(Application):
    """``/block`` waits at the gate (in ``service``); anything else answers at once."""

    gate: Gate

    def service(self) -> None:
        if self.request.url.path == "/block":
            self.gate.wait()  # GATED LINE
        self.response.headers.append("Content-Type: text/plain")
        self.response(f"done {self.request.url.path}\n")


class AsyncGatedApp(Application):
    """``/block`` awaits an event that is never set (until cancelled)."""

    async def service(self) -> None:
        if self.request.url.path == "/block":
            await asyncio.Event().wait()  # ASYNC GATED LINE
        self.response.headers.append("Content-Type: text/plain")
        await self.response.awrite(b"done\n")


class AsyncBlockingApp(Application):
    """``/stall`` blocks its worker's event loop; ``/wait`` awaits without blocking it."""

    async def service(self) -> None:
        if self.request.url.path == "/stall":
            time.sleep(0.6)  # BLOCKING LINE
        elif self.request.url.path == "/wait":
            await asyncio.sleep(0.6)
        self.response.headers.append("Content-Type: text/plain")
        await self.response.awrite(b"done\n")


def gated_line(marker: str) -> int:
    """The line number of the line carrying ``marker`` in this file."""
    lines = Path(__file__).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if marker in line)


def serve(
    app: Application, sock: Path, threads: int | None = None, **ops: Any
) -> smisk.runtime.embed.EmbeddedServer:
    """An embedded server on a unix socket with the given ``OpsConfig`` options."""
    return smisk.serve(
        app, bind=f"unix:{sock}", threads=threads, graceful_timeout=5, ops=OpsConfig(**ops)
    )


def gated(gate: Gate) -> GatedApp:
    app = GatedApp()
    app.gate = gate
    return app


def get_sync(sock: Path, path: str, **params: str) -> Response:
    """One GET on a new connection (blocking)."""
    script, _, query = path.partition("?")
    env = {
        "REQUEST_URI": path,
        "SCRIPT_NAME": script,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    } | params
    with FastCGIClient(str(sock), timeout=20) as client:
        return client.request(params=env, keep_conn=False)


async def get(sock: Path, path: str, **params: str) -> Response:
    """One GET on a new connection, run off the loop."""
    return await asyncio.to_thread(get_sync, sock, path, **params)


def start_get(sock: Path, path: str) -> asyncio.Future[Response]:
    """A GET running in the background."""
    return asyncio.ensure_future(get(sock, path))


async def status_json(sock: Path, path: str = "/status") -> dict[str, Any]:
    response = await get(sock, path)
    headers, body = response.split()
    assert headers["content-type"] == "application/json", headers
    return json.loads(body)  # type: ignore[no-any-return]
