"""The embedding API: smisk.serve() on the caller's loop, several apps, no signal handlers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import smisk
from smisk.core import Application
from tests.serve.support import smisk_env
from tests.support.fcgi_client import FastCGIClient

ROOT = Path(__file__).resolve().parents[2]


class Named(Application):
    name = "?"

    async def service(self) -> None:
        self.response.headers.append("Content-Type: text/plain")
        await self.response.awrite(f"app={self.name}".encode())


def make(name: str) -> Named:
    app = Named()
    app.name = name
    return app


async def get(address: tuple[str, int]) -> str:
    def call() -> str:
        with FastCGIClient(address, timeout=10) as client:
            return client.request(keep_conn=False).split()[1].decode()

    return await asyncio.to_thread(call)


def tcp(server: smisk.runtime.embed.EmbeddedServer) -> tuple[str, int]:
    address = server.addresses[0]
    return address.host, address.port


async def test_serve_as_an_async_context_manager_exposes_bound_addresses() -> None:
    async with smisk.serve(make("one"), bind="127.0.0.1:0") as server:
        host, port = tcp(server)
        assert host == "127.0.0.1" and port > 0
        assert await get((host, port)) == "app=one"
    with pytest.raises(OSError):
        await get((host, port))


async def test_several_apps_on_one_loop_with_start_and_close() -> None:
    first = await smisk.serve(make("first"), bind="127.0.0.1:0").start()
    second = await smisk.serve(make("second"), bind=["127.0.0.1:0"]).start()
    try:
        answers = await asyncio.gather(get(tcp(first)), get(tcp(second)), get(tcp(first)))
        assert answers == ["app=first", "app=second", "app=first"]
    finally:
        await first.close()
        await second.close()


async def test_no_signal_handlers_unless_asked() -> None:
    before = signal.getsignal(signal.SIGTERM)
    async with smisk.serve(make("x"), bind="127.0.0.1:0"):
        assert signal.getsignal(signal.SIGTERM) is before
    async with smisk.serve(make("x"), bind="127.0.0.1:0", handle_signals=True) as server:
        assert signal.getsignal(signal.SIGTERM) is not before
        loop = asyncio.get_running_loop()
        loop.call_soon(signal.raise_signal, signal.SIGTERM)
        await asyncio.wait_for(server.wait_stopped(), 5)
    assert signal.getsignal(signal.SIGTERM) is before


async def test_app_exit_asks_the_embedded_server_to_stop(tmp_path: Path) -> None:
    app = make("exit")
    server = smisk.serve(app, bind=f"unix:{tmp_path / 's.sock'}")
    serving = asyncio.create_task(server.serve_forever())
    while not server.addresses:
        await asyncio.sleep(0)
    app.exit()
    await asyncio.wait_for(serving, 10)
    assert not (tmp_path / "s.sock").exists()


def test_the_embedded_example_runs_inside_its_own_service(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "examples" / "embedded.py")]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env=smisk_env(), cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        host, _, port = line.split()[1].rpartition(":")
        with FastCGIClient((host, int(port)), timeout=10) as client:
            body = client.request(keep_conn=False).split()[1].decode()
        assert body.startswith("hello from an embedded server; beats=")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout.read().strip() == "STOPPED"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
