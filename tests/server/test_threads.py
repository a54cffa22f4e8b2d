"""HandlerThreads: bounded, context-copying, a cancelled task waits for its thread; outcomes
reach the loop through one wake-up fd per loop, shared by outcomes posted together."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable

import pytest

import smisk.server.threads as threads_module
from smisk.server.threads import HandlerThreads, WorkDropped

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
            assert len(pool._idle) == 1
        assert pool.size == 1
    finally:
        sys.setswitchinterval(interval)
        pool.shutdown()


async def test_submit_runs_done_on_the_loop_with_the_outcome() -> None:
    pool = HandlerThreads(2)
    loop = asyncio.get_running_loop()
    outcomes: list[tuple[object, object, int]] = []
    finished = asyncio.Event()

    def done(result: object, error: BaseException | None) -> None:
        outcomes.append((result, error, threading.get_ident()))
        if len(outcomes) == 2:
            finished.set()

    try:
        pool.submit(loop, done, int, "7")
        pool.submit(loop, done, int, "seven")
        await finished.wait()
        loop_thread = threading.get_ident()
        assert outcomes[0] == (7, None, loop_thread)
        result, error, thread = outcomes[1]
        assert result is None and isinstance(error, ValueError) and thread == loop_thread
    finally:
        pool.shutdown()


async def test_submitted_work_dropped_at_shutdown_gets_work_dropped() -> None:
    pool = HandlerThreads(1)
    loop = asyncio.get_running_loop()
    release = threading.Event()
    errors: list[BaseException | None] = []
    dropped = asyncio.Event()

    def done(result: object, error: BaseException | None) -> None:
        errors.append(error)
        dropped.set()

    pool.submit(loop, lambda *_: None, release.wait)
    pool.submit(loop, done, int)
    pool.shutdown(wait=False, cancel_pending=True)
    release.set()
    await dropped.wait()
    assert len(errors) == 1 and isinstance(errors[0], WorkDropped)
    assert isinstance(errors[0], asyncio.CancelledError)


async def test_outcomes_posted_while_the_loop_is_busy_share_one_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes: list[int] = []
    real_wake = threads_module._wake
    monkeypatch.setattr(threads_module, "_wake", lambda fd: (wakes.append(fd), real_wake(fd)))
    pool = HandlerThreads(2)
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    try:
        await pool.call(int)  # the inbox exists
        inbox = pool._inboxes[loop]
        wakes.clear()
        pool.submit(loop, lambda result, error: seen.append(result), int, "1")
        pool.submit(loop, lambda result, error: seen.append(result), int, "2")
        await asyncio.sleep(0)  # the pass ends: the threads get the work
        # The loop stays busy (blocked here) until both outcomes wait in the inbox.
        _until(lambda: len(inbox.outcomes) == 2)
        while len(seen) < 2:
            await asyncio.sleep(0)
        assert set(seen) == {1, 2}
        assert len(wakes) == 1
    finally:
        pool.shutdown()


async def test_work_reaches_the_threads_once_the_pass_that_submitted_it_is_over() -> None:
    # A thread woken in the middle of the loop's pass would take the GIL from the loop between
    # every two connections it still reads: the work of a pass is handed over at its end.
    pool = HandlerThreads(4)
    loop = asyncio.get_running_loop()
    results: list[int] = []
    finished = asyncio.Event()

    def done(result: int, error: BaseException | None) -> None:
        results.append(result)
        if len(results) == 3:
            finished.set()

    try:
        for n in range(3):
            pool.submit(loop, done, int, str(n))
        assert pool._queue.qsize() == 0 and pool.size == 0  # still this pass: no thread has it
        await finished.wait()
        assert sorted(results) == [0, 1, 2]
        assert 1 <= pool.size <= 3
    finally:
        pool.shutdown()


async def test_work_a_shutdown_finds_not_handed_over_is_dropped() -> None:
    pool = HandlerThreads(2)
    loop = asyncio.get_running_loop()
    await pool.call(int)  # a thread runs: the shutdown below waits for it, not for this pass
    errors: list[BaseException | None] = []
    dropped = asyncio.Event()

    def done(result: object, error: BaseException | None) -> None:
        errors.append(error)
        dropped.set()

    pool.submit(loop, done, int)
    pool.shutdown(wait=False)
    await dropped.wait()
    assert len(errors) == 1 and isinstance(errors[0], WorkDropped)


async def test_a_failing_done_callback_is_reported_and_later_outcomes_still_run() -> None:
    pool = HandlerThreads(1)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    finished = asyncio.Event()

    def failing(result: object, error: BaseException | None) -> None:
        raise RuntimeError("done callback broke")

    try:
        pool.submit(loop, failing, int)
        pool.submit(loop, lambda result, error: finished.set(), int)
        await finished.wait()
        assert isinstance(reported[0]["exception"], RuntimeError)
    finally:
        loop.set_exception_handler(None)
        pool.shutdown()


def test_shutdown_closes_the_wake_up_fds_of_a_closed_loop() -> None:
    before = _open_fds()
    pool = HandlerThreads(1)

    async def once() -> None:
        assert await pool.call(int, "3") == 3

    asyncio.run(once())
    pool.shutdown()
    assert _open_fds() == before


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _until(condition: Callable[[], object]) -> None:
    """Off the loop: wait (bounded, in small sleeps) until ``condition()`` is true."""
    for _ in range(10_000):
        if condition():
            return
        time.sleep(0.001)
    raise AssertionError("condition never became true")
