"""Allocator settings (smisk.runtime.allocator): freed request-sized memory stays for reuse."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smisk.runtime import allocator
from tests.serve.support import ServeProcess, fcgi_get, smisk_env

ROOT = str(Path(__file__).resolve().parents[1])

# Allocates, touches and frees 8 blocks of 3 MiB (below MMAP_THRESHOLD), then reports how much
# resident memory stayed: tuned, the heap (of whichever thread's arena) served them and keeps
# them; with glibc's defaults they were mapped one by one, or the heap was trimmed right after
# the free, so almost nothing stays.
HEAP_PROBE = """
import os

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def heap_after_large_blocks():
    before = resident()
    blocks = [bytearray(3 * 1024 * 1024) for _ in range(8)]
    del blocks
    return resident() - before
"""
KEPT = 20 * allocator.MIB  # of the 24 MiB the probe frees


def probe(setup: str, **env: str) -> str:
    script = HEAP_PROBE + textwrap.dedent(setup)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin", **env},
        check=True,
    )
    return result.stdout.strip()


def test_tuned_process_keeps_freed_blocks_for_reuse() -> None:
    out = probe(
        "from smisk.runtime import allocator\nprint(allocator.tune(), heap_after_large_blocks())"
    )
    applied, heap = out.split()
    assert applied == "True"
    assert int(heap) >= KEPT


def test_default_process_gives_them_back() -> None:
    assert int(probe("print(heap_after_large_blocks())")) < KEPT


ARENA_PROBE = """
import ctypes, os, re, tempfile, threading
from smisk.runtime import allocator

def arenas():
    libc = ctypes.CDLL(None)
    libc.fdopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fflush.argtypes = (ctypes.c_void_p,)
    with tempfile.TemporaryFile() as out:
        stream = libc.fdopen(os.dup(out.fileno()), b"w")
        libc.malloc_info(0, stream)
        libc.fflush(stream)
        out.seek(0)
        return len(re.findall(rb"<heap nr=", out.read()))

def allocate():
    for _ in range(50):
        blocks = [bytearray(65536) for _ in range(8)]
        del blocks

TUNE
threads = [threading.Thread(target=allocate) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(arenas())
"""


@pytest.mark.parametrize(("tune", "most"), [("allocator.tune()", allocator.ARENAS), ("", 64)])
def test_threads_share_a_few_arenas(tune: str, most: int) -> None:
    # Untuned, glibc gives each new thread an arena until 8 per core (here: at least 3 with
    # 16 threads on one core); each arena keeps freed memory of its own.
    count = int(probe(ARENA_PROBE.replace("TUNE", tune)))
    assert count <= most and (tune or count > allocator.ARENAS)


def test_glibc_variables_win() -> None:
    setup = (
        "from smisk.runtime import allocator\nprint(allocator.tune(), heap_after_large_blocks())"
    )
    applied, heap = probe(setup, MALLOC_TRIM_THRESHOLD_="131072").split()
    assert applied == "False"
    assert int(heap) < KEPT


def test_keep_zero_changes_nothing() -> None:
    assert allocator.tune(0) is False
    assert allocator.tune(allocator.DEFAULT_KEEP, {"MALLOC_MMAP_THRESHOLD_": "1"}) is False


def test_keep_from_environ() -> None:
    assert allocator.keep_from_environ({}) == allocator.DEFAULT_KEEP
    assert allocator.keep_from_environ({"SMISK_MALLOC_KEEP": "16"}) == 16 * allocator.MIB
    assert allocator.keep_from_environ({"SMISK_MALLOC_KEEP": "0"}) == 0
    with pytest.raises(ValueError, match="SMISK_MALLOC_KEEP"):
        allocator.keep_from_environ({"SMISK_MALLOC_KEEP": "-1"})


HEAP_APP = (
    HEAP_PROBE
    + """
from smisk.core import Application

class App(Application):
    def service(self):
        self.response.headers.append("Content-Type: text/plain")
        self.response(f"{heap_after_large_blocks()}\\n")
"""
)


@pytest.mark.parametrize(("args", "tuned"), [([], True), (["--malloc-keep", "0"], False)])
def test_smisk_serve_workers_are_tuned(tmp_path: Path, args: list[str], tuned: bool) -> None:
    (tmp_path / "heapapp.py").write_text(HEAP_APP)
    sock = str(tmp_path / "app.sock")
    argv = ["heapapp:App", "--bind", f"unix:{sock}", "--workers", "2", *args]
    with ServeProcess(argv, tmp_path, env=smisk_env()) as server:
        server.wait_for("ready")
        heap = int(fcgi_get(sock, "/"))
    assert (heap >= KEPT) is tuned


class _Started(Exception):
    pass


def test_application_run_tunes_with_smisk_malloc_keep(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from smisk.core import Application, bind, unbind
    from smisk.runtime import handler as serving

    asked: list[int] = []

    def record(keep: int) -> bool:
        asked.append(keep)
        raise _Started  # stop before serving: only the start-up is under test

    monkeypatch.setattr(serving.allocator, "tune", record)
    monkeypatch.setenv("SMISK_MALLOC_KEEP", "8")
    bind(str(tmp_path / "run.sock"))
    try:
        with pytest.raises(_Started):
            Application().run()
    finally:
        unbind()
    assert asked == [8 * allocator.MIB]
