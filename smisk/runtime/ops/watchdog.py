"""LoopWatchdog: reports an event loop that stopped running its callbacks.

An async ``service()`` that blocks (``time.sleep``, a synchronous database driver, a long
computation) stops every request of its worker, not just its own; the slow-request log, checked
by a timer on that same loop, cannot fire meanwhile. The watchdog is a thread: the loop stamps a
heartbeat every ``period`` seconds, and when the stamp is older than ``threshold`` the thread
logs the loop thread's stack, once per stall, on the ``smisk.slowlog`` logger.

Rules: the thread only reads the stamp and the loop thread's frames; it never touches the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

from smisk.runtime.ops.slowlog import emit, thread_stack

__all__ = ["LoopWatchdog"]

MIN_PERIOD = 0.01  # seconds between heartbeats, at least ...
MAX_PERIOD = 0.25  # ... and at most


class LoopWatchdog:
    """Logs the stack of the loop's thread when the loop has not run for ``threshold`` s."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.period = min(max(threshold / 4, MIN_PERIOD), MAX_PERIOD)
        self.stalls = 0  # stalls reported so far
        self._last_beat = time.monotonic()
        self._loop_thread = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start beating on the running loop and watching from a thread."""
        self._loop_thread = threading.get_ident()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="smisk-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and the thread (call on the loop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.period, self._beat)

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(self.period):
            stalled = time.monotonic() - self._last_beat
            if stalled < self.threshold:
                reported = False
            elif not reported:
                reported = True
                self.stalls += 1
                self._report(stalled)

    def _report(self, stalled: float) -> None:
        headline = (
            f"event loop blocked for {stalled:.3f} s (pid {os.getpid()}): every request of this "
            "worker waits; an async service() is calling something that blocks"
        )
        emit(headline, thread_stack(self._loop_thread))
