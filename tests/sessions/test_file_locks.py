"""FileSessionStore locking across processes: an flock() on <prefix><id>.lock."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from smisk.sessions import new_id
from smisk.sessions.base import SessionBusy
from smisk.sessions.file import FileSessionStore
from tests.serve.support import ServeProcess, smisk_env
from tests.sessions.conftest import Browser
from tests.support.serving import ROOT


def store_at(directory: Path, **options: object) -> FileSessionStore:
    return FileSessionStore(str(directory / "s."), locking=True, **options)  # type: ignore[arg-type]


async def test_a_lock_held_by_another_store_waits_then_gives_way(tmp_path: Path) -> None:
    # Two stores stand for two processes: flock() locks belong to open files, not processes.
    first, second = store_at(tmp_path), store_at(tmp_path, lock_wait=0.2)
    session = new_id()
    token = await first.lock(session)
    assert os.path.exists(first.lock_path(session))
    started = time.monotonic()
    with pytest.raises(SessionBusy):
        await second.lock(session)
    assert time.monotonic() - started >= 0.2
    waiter = asyncio.ensure_future(store_at(tmp_path, lock_wait=5).lock(session))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await first.unlock(session, token)
    await asyncio.wait_for(waiter, 2)  # taken soon after the release
    assert os.path.exists(first.lock_path(session))


async def test_unlock_removes_the_lock_file(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    session = new_id()
    await store.unlock(session, await store.lock(session))
    assert not os.path.exists(store.lock_path(session))
    await store.unlock(session, await store.lock(session))  # and it can be taken again


async def test_a_cancelled_wait_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder, session = store_at(tmp_path), new_id()
    token = await holder.lock(session)
    waiter = asyncio.ensure_future(store_at(tmp_path, lock_wait=5).lock(session))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await holder.unlock(session, token)
    third = store_at(tmp_path, lock_wait=1)
    await third.unlock(session, await third.lock(session))


HOLDER = """
import asyncio, sys
from smisk.sessions.file import FileSessionStore
store = FileSessionStore(sys.argv[1], locking=True)
asyncio.run(store.lock(sys.argv[2]))
print("LOCKED", flush=True)
sys.stdin.read()
"""


async def test_the_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    session = new_id()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "s."), session],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(SessionBusy):
            await store_at(tmp_path, lock_wait=0.2).lock(session)
        holder.kill()
        holder.wait(10)
        store = store_at(tmp_path, lock_wait=2)
        await store.unlock(session, await store.lock(session))  # the kernel dropped the lock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()


async def test_gc_removes_stale_lock_files_nobody_holds(tmp_path: Path) -> None:
    store = store_at(tmp_path, ttl=60)
    stale, held = new_id(), new_id()
    Path(store.lock_path(stale)).touch()
    token = await store.lock(held)
    old = time.time() - 3600
    for session in (stale, held):
        os.utime(store.lock_path(session), (old, old))
    removed = await asyncio.get_running_loop().run_in_executor(None, store.collect)
    assert removed == 1
    assert not os.path.exists(store.lock_path(stale))
    assert os.path.exists(store.lock_path(held))  # held: never removed under its holder
    await store.unlock(held, token)


def test_two_workers_share_the_lock(tmp_path: Path) -> None:
    """smisk-serve --workers 2, one locking file store: no increment is lost across workers."""
    sock = str(tmp_path / "app.sock")
    env = smisk_env(SMISK_TEST_SESSION_PREFIX=str(tmp_path / "sessions" / "s."))
    argv = ["tests.sessions.apps:FileCounterApp", "--bind", f"unix:{sock}", "--workers", "2"]
    with ServeProcess(argv, Path(ROOT), env=env) as server:
        server.wait_for("ready")
        browser = Browser(sock)
        assert browser.get("/incr").body.startswith("1 ")
        paths = ["/slow-incr", "/incr"] * 40
        with ThreadPoolExecutor(40) as pool:
            replies = list(pool.map(lambda path: browser.get(path), paths))
        assert [r.status for r in replies] == [200] * len(paths)
        served_by = collections.Counter(r.body.split()[1] for r in replies if r.body)
        assert len(served_by) == 2  # both workers took requests of the one session
        assert json.loads(browser.get("/get").body) == {"n": 1 + len(paths)}
