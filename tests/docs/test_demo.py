"""README's first command, ``scripts/demo``: it answers through a real nginx, stops with
everything it started when its own PID gets SIGTERM, and leaves a development install of this
checkout (``pip install -e``) alone instead of installing a copy over it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.support import ROOT, free_port, http, python_env

DEMO = ROOT / "scripts" / "demo"
READY = b"smisk is serving"
START_TIMEOUT = 60.0  # seconds for the demo to say it is serving (nginx and smisk start)
STOP_TIMEOUT = 30.0  # seconds for the demo and its children to go after SIGTERM


def _installed_from_checkout() -> bool:
    """Whether the interpreter imports smisk from this checkout when run elsewhere."""
    found = subprocess.run(
        [sys.executable, "-c", "import smisk, os; print(os.path.realpath(smisk.__file__))"],
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() == str((ROOT / "smisk" / "__init__.py").resolve())


@pytest.fixture
def pip_shim(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A ``python3`` first on PATH that records ``-m pip`` calls instead of running them."""
    bindir, log = tmp_path / "bin", tmp_path / "pip.log"
    bindir.mkdir()
    log.touch()
    shim = bindir / "python3"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -m ] && [ "$2" = pip ]; then echo "$*" >> {log}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    shim.chmod(0o755)
    yield bindir, log


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_ready(proc: subprocess.Popen[bytes]) -> bytes:
    """The demo's output up to its "serving" line; fails if it exits or takes too long."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    output = b""
    deadline = time.monotonic() + START_TIMEOUT
    while READY not in output:
        assert proc.poll() is None, f"the demo exited with {proc.returncode}: {output!r}"
        assert time.monotonic() < deadline, f"the demo did not start: {output!r}"
        output += proc.stdout.read() or b""
        time.sleep(0.05)
    return output


def test_demo_answers_and_stops_by_its_pid(pip_shim: tuple[Path, Path]) -> None:
    bindir, pip_log = pip_shim
    port = free_port()
    env = python_env(PORT=str(port))
    env.pop("PYTHONPATH")  # as in a user's shell: the demo finds smisk where it is installed
    env["PATH"] = f"{bindir}:{env['PATH']}"
    proc = subprocess.Popen(
        [str(DEMO)],
        cwd="/",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: nginx and smisk-serve are in it
    )
    try:
        output = _wait_ready(proc)
        assert b"Hello World!" in output
        status, _, body = http(f"http://127.0.0.1:{port}/")
        assert (status, body) == (200, b"Hello World!\n")
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(proc.pid), "nginx or smisk-serve outlived the demo"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT)
        assert proc.stdout is not None
        proc.stdout.close()
    calls = pip_log.read_text()
    if _installed_from_checkout():
        assert calls == "", "the demo installed a copy over this checkout's development install"
    else:
        assert ".[uvloop]" in calls
