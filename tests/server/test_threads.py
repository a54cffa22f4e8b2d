"""HandlerThreads: bounded, context-copying, and a cancelled task waits for its thread."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading

import pytest

from smisk.server.threads import HandlerThreads

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


async def test_result_exception_and_context() -> None:
    pool = HandlerThreads(2)
    try:
        marker.set("request-1")
        assert await pool.call(lambda: (marker.get(), threading.current_thread().name)) == (
            "request-1",
            "smisk-service_0",
        )
        with pytest.raises(KeyError, match="boom"):
            await pool.call(lambda: {}["boom"])
    finally:
        pool.shutdown()


async def test_never_more_threads_than_the_bound() -> None:
    pool = HandlerThreads(3)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1

    try:
        calls = [asyncio.ensure_future(pool.call(work)) for _ in range(8)]
        while running[0] < 3:  # the first three are inside work()
            await asyncio.sleep(0.01)
        assert pool.size == 3
        release.set()
        await asyncio.gather(*calls)
        assert peak[0] == 3
    finally:
        pool.shutdown()


async def test_a_cancelled_task_waits_for_its_thread() -> None:
    pool = HandlerThreads(1)
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(10)
        finished.set()

    try:
        task = asyncio.ensure_future(pool.call(work))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # the thread still runs: the task has not given up on it
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()
    finally:
        pool.shutdown()


async def test_shutdown_cancels_work_no_thread_started() -> None:
    pool = HandlerThreads(1)
    release = threading.Event()
    first = asyncio.ensure_future(pool.call(release.wait, 10))
    queued = asyncio.ensure_future(pool.call(lambda: "never"))
    await asyncio.sleep(0.05)
    pool.shutdown(wait=False, cancel_pending=True)
    release.set()
    assert await first is True
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="shut down"):
        pool.run(asyncio.get_running_loop(), print)


async def test_a_thread_is_idle_before_its_result_is_seen() -> None:
    # The thread marks itself idle before it posts the result, so sequential calls always find
    # it idle and never start another thread. A tiny switch interval makes the loop take the
    # GIL right after the post, where a late idle mark would be seen missing.
    pool = HandlerThreads(8)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(300):
            await pool.call(int)
            assert pool._idle == 1
        assert pool.size == 1
    finally:
        sys.setswitchinterval(interval)
        pool.shutdown()
