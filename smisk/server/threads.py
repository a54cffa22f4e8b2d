"""HandlerThreads: the bounded pool that runs sync handlers off the event loop.

Rules: the loop hands work over at the end of the loop pass that submitted it (a thread woken
sooner would take the GIL from the loop between the connections it still reads), with one queue
put per item and, when a thread is idle, one atomic deque pop: no lock per request. A thread hands
the outcome back through its loop's ``_Inbox`` (an append and at most one eventfd write, which
releases the GIL before it wakes the loop), and the loop runs the caller's ``done(result,
error)``. The future ``run``/``call`` return cannot be cancelled: a thread cannot be stopped, so
cancelling the awaiting task (abort, disconnect, shutdown) takes effect when the handler returns,
and nothing the handler still uses (upload files, the request) is released under it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Done", "HandlerThreads", "WorkDropped"]

T = TypeVar("T")

# Called on the submitting loop with the work's result and None, or None and what it raised.
Done = Callable[[Any, "BaseException | None"], None]

_STOP = None  # queued once per thread to end it


class WorkDropped(asyncio.CancelledError):
    """Queued work that ``shutdown(cancel_pending=True)`` dropped before any thread ran it."""


class _ThreadResult(asyncio.Future[Any]):
    """A handler thread's result: the awaiting task's cancellation waits for the thread."""

    def cancel(self, msg: Any = None) -> bool:
        return False

    def settle(self, result: Any, error: BaseException | None) -> None:
        """The ``Done`` callback of ``HandlerThreads.run``."""
        if self.done():
            return
        if error is None:
            self.set_result(result)
        elif isinstance(error, WorkDropped):
            asyncio.Future.cancel(self)  # bypasses cancel() above: this work never started
        else:
            self.set_exception(error)


class _Inbox:
    """Outcomes handler threads post for one loop, run there by one reader callback.

    ``call_soon_threadsafe`` wakes the loop while the posting thread holds the GIL: on a busy
    (or single) CPU the woken loop thread runs, finds the GIL taken and sleeps again until the
    thread blocks for its next work. A write to the wake-up fd releases the GIL first, so the
    woken loop runs at once; several outcomes posted before the loop runs share one wake-up.
    """

    __slots__ = ("_read_fd", "_write_fd", "batch", "loop", "outcomes", "signalled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Work submitted on the loop and not yet handed to the threads (see HandlerThreads).
        self.batch: list[tuple[_Inbox, Done, Callable[..., Any], tuple[Any, ...]]] = []
        self.outcomes: collections.deque[tuple[Done, Any, BaseException | None]] = (
            collections.deque()
        )
        self.signalled = False  # a wake-up is pending: later posts need not write again
        self._read_fd, self._write_fd = _wake_fds()
        loop.add_reader(self._read_fd, self._drain)

    def post(self, done: Done, result: Any, error: BaseException | None) -> None:
        """From a handler thread: run ``done(result, error)`` on the loop."""
        self.outcomes.append((done, result, error))
        if not self.signalled:
            self.signalled = True
            _wake(self._write_fd)

    def _drain(self) -> None:
        # The fd is emptied before the flag is cleared: a post in between sees the flag still
        # set and writes nothing, but its outcome is already queued and is taken below.
        _clear(self._read_fd)
        self.signalled = False
        outcomes, take = self.outcomes, self.outcomes.popleft
        while outcomes:
            done, result, error = take()
            try:
                done(result, error)
            except Exception as exc:  # as the loop treats a failing callback: logged, not fatal
                self.loop.call_exception_handler(
                    {"message": "a handler thread's outcome callback failed", "exception": exc}
                )

    def close(self) -> None:
        """On the loop, once no thread can post any more: run what is left, free the fds."""
        self._drain()
        self.loop.remove_reader(self._read_fd)
        self._close_fds()

    def _close_fds(self) -> None:
        os.close(self._read_fd)
        if self._write_fd != self._read_fd:
            os.close(self._write_fd)


def _drop(inbox: _Inbox, done: Done) -> None:
    """Tell ``done`` its work was dropped by a shutdown before any thread ran it."""
    inbox.post(done, None, WorkDropped("the handler threads shut down"))


if hasattr(os, "eventfd"):

    def _wake_fds() -> tuple[int, int]:
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd

    def _wake(fd: int) -> None:
        os.eventfd_write(fd, 1)

    def _clear(fd: int) -> None:
        try:  # noqa: SIM105 - once per wake-up: cheaper than contextlib.suppress
            os.eventfd_read(fd)
        except BlockingIOError:  # close() drains an fd nothing was written to
            pass

else:  # pragma: no cover - platforms without eventfd (macOS): a pipe

    def _wake_fds() -> tuple[int, int]:
        read_fd, write_fd = os.pipe()
        for fd in (read_fd, write_fd):
            os.set_blocking(fd, False)
        return read_fd, write_fd

    def _wake(fd: int) -> None:
        with contextlib.suppress(BlockingIOError):  # full: the loop is woken already
            os.write(fd, b"\0")

    def _clear(fd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(fd, 4096):
                pass


class HandlerThreads:
    """Up to ``max_threads`` daemon threads, started as work arrives, fed from one queue."""

    def __init__(self, max_threads: int, name_prefix: str = "smisk-service") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.name_prefix = name_prefix
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per thread waiting for work that no queued item is meant for yet. Appending
        # and popping a deque is atomic, so handing work over needs no lock; the lock guards
        # starting and ending threads, and shutting down.
        self._idle: collections.deque[None] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self._live = 0  # threads started and not yet ended
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}

    @property
    def size(self) -> int:
        """Threads started so far."""
        return len(self._threads)

    def submit(
        self, loop: asyncio.AbstractEventLoop, done: Done, fn: Callable[..., Any], *args: Any
    ) -> None:
        """Queue ``fn(*args)``; once it returns or raises, ``done(result, error)`` runs on
        ``loop`` (``error`` is None on success). Work dropped by ``shutdown(cancel_pending=True)``
        gets a ``WorkDropped`` error, and so does work a shutdown finds not yet handed over (the
        threads get it at the end of the loop pass). Called on ``loop``'s thread; raises
        RuntimeError once the pool is shut down."""
        if self._closed:
            raise RuntimeError("the handler threads are shut down")
        inbox = self._inboxes.get(loop) or self._open_inbox(loop)
        batch = inbox.batch
        batch.append((inbox, done, fn, args))
        if len(batch) == 1:
            loop.call_soon(self._hand_over, inbox)

    def _hand_over(self, inbox: _Inbox) -> None:
        """On the loop, after the callbacks of the pass that submitted work: wake threads for
        it. A thread woken earlier would wait for the GIL while the loop still reads the other
        connections of that pass, and take it from the loop between every two of them."""
        batch, inbox.batch = inbox.batch, []
        if self._closed:  # shut down since: as work dropped from the queue
            for _, done, _, _ in batch:
                _drop(inbox, done)
            return
        put, idle = self._queue.put, self._idle
        for item in batch:
            put(item)
            try:
                idle.pop()  # an idle thread takes it
            except IndexError:
                self._start_thread()

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> Any:
        """Queue ``fn(*args)``; return a future (of ``loop``) for its result."""
        future = _ThreadResult(loop=loop)
        self.submit(loop, future.settle, fn, *args)
        return future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a handler thread, in a copy of the current context."""
        loop = asyncio.get_running_loop()
        future = _ThreadResult(loop=loop)
        self.submit(loop, future.settle, contextvars.copy_context().run, fn, *args)
        return await future  # type: ignore[no-any-return]

    def _open_inbox(self, loop: asyncio.AbstractEventLoop) -> _Inbox:
        inbox = self._inboxes[loop] = _Inbox(loop)
        return inbox

    def _start_thread(self) -> None:
        with self._lock:
            if len(self._threads) >= self.max_threads:
                return  # it waits for the first thread to finish
            thread = threading.Thread(
                target=self._work, name=f"{self.name_prefix}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            self._live += 1
        thread.start()

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _drop(item[0], item[1])

    def _work(self) -> None:
        get, idle = self._queue.get, self._idle.append
        while (item := get()) is not _STOP:
            inbox, done, fn, args = item
            del item
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as raised:
                result, error = None, raised
            # Idle before the outcome is posted: the post wakes the loop, and work it hands
            # over from there must find this thread counted as idle.
            idle(None)
            inbox.post(done, result, error)
            del inbox, done, fn, args, result, error
        self._thread_ended()

    def _thread_ended(self) -> None:
        with self._lock:
            self._live -= 1
            last = self._closed and self._live == 0
        if last:
            self._close_inboxes()

    def _close_inboxes(self) -> None:
        """No thread can post any more: each inbox is closed on its loop (directly when that
        loop is closed already)."""
        inboxes, self._inboxes = self._inboxes, {}
        for loop, inbox in inboxes.items():
            try:
                loop.call_soon_threadsafe(inbox.close)
            except RuntimeError:  # the loop is closed: nothing reads the fds any more
                inbox._close_fds()

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop the threads once the queued work is done; ``wait`` joins them.
        ``cancel_pending`` drops work no thread has started: its ``done`` gets ``WorkDropped``
        (the task awaiting a ``run``/``call`` future is cancelled)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
            idle_pool = self._live == 0
        if cancel_pending:
            self._cancel_queued()
        if idle_pool:
            self._close_inboxes()
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
