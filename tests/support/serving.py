"""Run a server for tests: in a thread with its own loop, or in a child process (for RSS)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from smisk.server import Handler, Server, bind_listener

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ServerThread:
    """A Server on a private event loop in a daemon thread."""

    def __init__(self, handler: Handler, addresses: list[str], **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = Server(handler, **options)
        self._listeners = [bind_listener(a) for a in addresses]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.call(self.server.start(self._listeners))
        return self

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def addresses(self) -> list[Any]:
        out: list[Any] = []
        for address in self.server.addresses:
            out.append(address.path if address.family == "unix" else (address.host, address.port))
        return out

    def close(self, timeout: float = 10) -> None:
        self.call(self.server.close(timeout))

    def __exit__(self, *exc: object) -> None:
        if not self.server._closing:
            self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def server_process(
    address: str, *extra: str, stdin: Any = None, prefix: Sequence[str] = ()
) -> Iterator[subprocess.Popen[str]]:
    """Run tests/support/serve_handlers.py in a child process serving ``address``.

    ``stdin`` becomes the child's fd 0 (a listening socket, with ``address="inherit"``);
    ``prefix`` is a launcher put before the command (e.g. spawn-fcgi). The child's "READY host:port"
    line is kept as ``proc.ready`` (the bound address after "READY ").
    """
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "tests.support.serve_handlers", address, *extra],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), line
        proc.ready = line.split(" ", 1)[1].strip()  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


def tcp_address(text: str) -> tuple[str, int]:
    """``("127.0.0.1", 5000)`` from ``127.0.0.1:5000`` or ``[::1]:5000``."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` now, in KiB."""
    return _proc_status_kib(pid, "VmRSS:")


def peak_rss_kib(pid: int) -> int:
    """The largest resident set size process ``pid`` has had so far, in KiB."""
    return _proc_status_kib(pid, "VmHWM:")


def _proc_status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds.

    For state another thread or process reaches on its own (a flag, a counter, a paused
    transport): the wait ends as soon as the state is reached, never after a fixed delay.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.005)


class HandlerGate:
    """Holds a handler (in its thread) until opened: it calls ``entered.release()`` and waits
    on ``release``; the test calls ``wait_entered()``, then ``release.set()``."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=30), "the handler never started"
