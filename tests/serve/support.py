"""smisk-serve in a child process for tests: its log lines are collected by a reader thread so a
test waits for a line ("ready: ...") instead of sleeping; every process and pipe is closed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.fcgi_client import FastCGIClient

ROOT = str(Path(__file__).resolve().parents[2])

APP_SOURCE = """
import asyncio, logging, os, sys, time
from smisk.core import Application

VERSION = "{version}"

class App(Application):
    def service(self):
        path = self.request.url.path
        if path.startswith("/log"):
            logging.getLogger("app").warning("logged by %d", os.getpid())
        if path.startswith("/sleep"):
            print(f"sleeping pid={{os.getpid()}}", file=sys.stderr, flush=True)
            time.sleep(float(self.request.get.get("s", "2")))
        body = self.request.input.read() if self.request.method == "POST" else b""
        self.response.headers.append("Content-Type: text/plain")
        self.response(f"{{VERSION}} pid={{os.getpid()}} path={{path}} body={{len(body)}}\\n")

class AsyncApp(Application):
    async def service(self):
        loop = type(asyncio.get_running_loop()).__module__
        self.response.headers.append("Content-Type: text/plain")
        await self.response.awrite(f"{{VERSION}} pid={{os.getpid()}} loop={{loop}}\\n".encode())

instance = App()

def factory():
    return App()

def not_an_app():
    return 42

number = 7
"""


def write_app(directory: Path, version: str = "v1", name: str = "app") -> Path:
    """Write the test application module; different versions have different sizes so a reload
    never meets a stale bytecode cache (which checks mtime seconds and size)."""
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(APP_SOURCE.format(version=version)))
    return path


def smisk_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMISK_")}
    if "SMISK_NO_EXTENSIONS" in os.environ:
        env["SMISK_NO_EXTENSIONS"] = os.environ["SMISK_NO_EXTENSIONS"]
    if "SMISK_EXTENSION" in os.environ:
        env["SMISK_EXTENSION"] = os.environ["SMISK_EXTENSION"]
    env["PYTHONPATH"] = ROOT
    env.update(extra)
    return env


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 30, **env: str) -> Any:
    """Run ``python -m smisk ARGS`` to completion (for commands that exit by themselves)."""
    return subprocess.run(
        [sys.executable, "-m", "smisk", *args],
        cwd=cwd,
        env=smisk_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class ServeProcess:
    """``python -m smisk ARGS`` (or another command) running in the background."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        command: Sequence[str] | None = None,
        stdin: Any = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> None:
        argv = [*(command or [sys.executable, "-m", "smisk"]), *args]
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env or smisk_env(),
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: nothing outlives the test
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20, count: int = 1) -> re.Match[str]:
        """Wait until ``count`` log lines match ``pattern``; return the last match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [m for m in map(regex.search, self.lines) if m]
                if len(matches) >= count:
                    return matches[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matching {pattern!r}:\n{self.log}")
                self._changed.wait(min(remaining, 0.5))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        """SIGTERM, then wait; a process that does not stop in time fails the test (after its
        whole process group is killed, so no worker outlives it)."""
        stuck = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                stuck = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers only: workers exit with it
        self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        if stuck:
            raise AssertionError(f"the server did not stop on SIGTERM:\n{self.log}")

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fcgi_get(address: str | tuple[str, int], path: str = "/", **params: str) -> str:
    """One GET over a new FastCGI connection; returns the body as text."""
    with FastCGIClient(address, timeout=30) as client:
        script, _, query = path.partition("?")
        env = {"REQUEST_URI": path, "SCRIPT_NAME": script, "QUERY_STRING": query} | params
        response = client.request(params=env, keep_conn=False)
        _, body = response.split()
        return body.decode()


def pid_of(body: str) -> int:
    match = re.search(r"pid=(\d+)", body)
    assert match, body
    return int(match.group(1))


def children_of(pid: int) -> set[int]:
    """Process ids whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def wait_until(condition: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    """Poll ``condition`` (state another process reaches on its own) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


class Load:
    """A bounded load: ``total`` calls of ``call`` over ``concurrency`` threads; the outcome of
    each is kept (a result or the exception)."""

    def __init__(self, call: Callable[[int], Any], total: int, concurrency: int = 8) -> None:
        self.call = call
        self.total = total
        self.results: list[Any] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(concurrency)
        self._futures = [self._pool.submit(self._one, i) for i in range(total)]

    def _one(self, index: int) -> None:
        try:
            result = self.call(index)
        except BaseException as error:
            with self._lock:
                self.errors.append(error)
        else:
            with self._lock:
                self.results.append(result)

    @property
    def done_count(self) -> int:
        with self._lock:
            return len(self.results) + len(self.errors)

    def join(self, timeout: float = 90) -> None:
        for future in self._futures:
            future.result(timeout)
        self._pool.shutdown()


def bodies(results: Iterable[Any]) -> list[str]:
    return [r for r in results if isinstance(r, str)]
