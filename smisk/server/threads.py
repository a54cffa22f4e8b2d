"""HandlerThreads: the bounded pool that runs sync handlers off the event loop.

Rules: the loop hands work over with one queue put; a thread hands the result back with one
``call_soon_threadsafe``. The future a request task awaits cannot be cancelled: a thread cannot be
stopped, so cancelling the task (abort, disconnect, shutdown) takes effect when the handler
returns, and nothing the handler still uses (upload files, the request) is released under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HandlerThreads"]

T = TypeVar("T")

_STOP = None  # queued once per thread to end it


class _ThreadResult(asyncio.Future[Any]):
    """A handler thread's result: the awaiting task's cancellation waits for the thread."""

    def cancel(self, msg: Any = None) -> bool:
        return False


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class HandlerThreads:
    """Up to ``max_threads`` daemon threads, started as work arrives, fed from one queue."""

    def __init__(self, max_threads: int, name_prefix: str = "smisk-service") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.name_prefix = name_prefix
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work, minus work queued for them
        self._lock = threading.Lock()
        self._closed = False

    @property
    def size(self) -> int:
        """Threads started so far."""
        return len(self._threads)

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> Any:
        """Queue ``fn(*args)``; return a future (of ``loop``) for its result."""
        if self._closed:
            raise RuntimeError("the handler threads are shut down")
        future = _ThreadResult(loop=loop)
        self._queue.put((loop, future, fn, args))
        self._wake_or_start()
        return future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a handler thread, in a copy of the current context."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await self.run(loop, context.run, fn, *args)  # type: ignore[no-any-return]

    def _wake_or_start(self) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # an idle thread takes it
                return
            if len(self._threads) >= self.max_threads:
                return  # it waits for the first thread to finish
            thread = threading.Thread(
                target=self._work, name=f"{self.name_prefix}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                loop, future = item[0], item[1]
                _post(loop, _cancel, future)

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not _STOP:
            loop, future, fn, args = item
            del item
            callback: Callable[[asyncio.Future[Any], Any], None]
            try:
                result = fn(*args)
            except BaseException as error:
                callback, outcome = _fail, error
            else:
                callback, outcome = _succeed, result
            # Idle before the result is posted: the post wakes the loop, which then needs the
            # GIL this thread holds until it blocks in get(); the less done after it, the sooner
            # the loop runs (often without a second sleep on the GIL).
            with self._lock:
                self._idle += 1
            _post(loop, callback, future, outcome)
            del loop, future, fn, args, outcome

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop the threads once the queued work is done; ``wait`` joins them.
        ``cancel_pending`` drops work no thread has started: its awaiting tasks are cancelled."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_pending:
            self._cancel_queued()
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


def _cancel(future: asyncio.Future[Any]) -> None:
    asyncio.Future.cancel(future)  # bypasses _ThreadResult.cancel: this work never started


def _post(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the result any more
        loop.call_soon_threadsafe(callback, *args)
