"""Channel: how a request's objects reach the event loop.

Rules: async handlers run on the loop and await directly; sync handlers run in worker threads and
hand every blocking operation to the loop with ``run_coroutine_threadsafe`` (a thread never
touches the transport). A blocking call made on the loop thread raises instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["BlockingCallOnLoopError", "Channel"]

T = TypeVar("T")


class BlockingCallOnLoopError(RuntimeError):
    """A blocking stream method was called from the event loop thread."""


class Channel:
    """The loop a request lives on, and whether its handler runs in a thread."""

    __slots__ = ("loop", "loop_thread", "threaded")

    def __init__(self, loop: asyncio.AbstractEventLoop, threaded: bool) -> None:
        self.loop = loop
        self.threaded = threaded
        self.loop_thread = threading.get_ident()

    def block(self, func: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run the coroutine function ``func(*args)`` on the loop and wait for its result."""
        if threading.get_ident() == self.loop_thread:
            name = getattr(func, "__name__", "operation")
            raise BlockingCallOnLoopError(
                f"blocking {name}() called on the event loop; in an async service() use the "
                f"awaitable variant (e.g. `await request.input.aread()`, `await response.awrite()`)"
            )
        coro = func(*args)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()  # type: ignore[arg-type]
