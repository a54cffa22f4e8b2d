"""kill -9 of a process in the middle of session writes leaves no torn session file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from smisk.core.errors import InvalidSessionError
from smisk.sessions import FileSessionStore, new_id
from tests.support.serving import ROOT

KILLS = 6  # processes killed per mode
IDS = 4  # sessions rewritten in a loop by each process


def kill_writer_midway(mode: str, prefix: str, ids: list[str]) -> None:
    """Start the writer child, let it write for a moment, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sessions.writer", mode, prefix, ",".join(ids)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "WRITING"
        time.sleep(random.uniform(0.005, 0.05))  # a random point inside the write loop
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def torn_sessions(store: FileSessionStore, ids: list[str]) -> list[str]:
    torn = []
    for session_id in ids:
        try:
            data = store.read(session_id)
        except InvalidSessionError:
            torn.append(session_id)
        else:
            assert data["payload"] == "x" * 200_000
    return torn


def test_kill_9_mid_write_leaves_every_session_whole(tmp_path: Path) -> None:
    store = FileSessionStore(str(tmp_path / "smisk-sess."), gc_probability=0)
    ids = [new_id() for _ in range(IDS)]
    for _ in range(KILLS):
        kill_writer_midway("atomic", store.file_prefix, ids)
        assert torn_sessions(store, ids) == []
    names = os.listdir(tmp_path)
    assert {f"smisk-sess.{i}" for i in ids} <= set(names)
    leftovers = [n for n in names if n.endswith(".tmp")]  # interrupted writes, never read
    assert len(names) == IDS + len(leftovers)
    for name in leftovers:
        os.utime(tmp_path / name, (0, 0))
    assert store.collect() == len(leftovers)  # GC takes the orphaned temp files


def test_the_check_catches_torn_files_of_in_place_writes(tmp_path: Path) -> None:
    """Control: the classic truncate-and-write leaves torn files that the check above sees."""
    store = FileSessionStore(str(tmp_path / "smisk-sess."), gc_probability=0)
    ids = [new_id() for _ in range(IDS)]
    for _ in range(20):
        kill_writer_midway("naive", store.file_prefix, ids)
        if torn_sessions(store, ids):
            return
    raise AssertionError("in-place writes killed 20 times never left a torn file")
