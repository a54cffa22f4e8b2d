"""The slow-request log: the Python stack of a handler that runs too long.

Rules: stacks are taken on the loop without I/O — the frames are summarised with
``lookup_lines=False`` — and turned into text in the writer thread, where reading the source
lines (linecache) may block. A sync handler's stack comes from ``sys._current_frames()`` for its
thread; an async handler's from its task, following the chain of awaited coroutines down to the
innermost one (``task.get_stack()`` stops at the outermost coroutine of a suspended task).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any

__all__ = ["coroutine_frames", "emit", "format_report", "task_stack", "thread_stack"]

log = logging.getLogger("smisk.slowlog")

MAX_DEPTH = 100  # frames kept per stack: a deep recursion must not make a huge log entry


def _summary(frames: list[FrameType], after: CodeType | None) -> traceback.StackSummary:
    """Summarise ``frames`` (outermost first), dropping those up to the one running ``after``
    (the server's own frames above the handler)."""
    for number, frame in enumerate(frames):
        if frame.f_code is after:
            frames = frames[number + 1 :]
            break
    frames = frames[-MAX_DEPTH:]
    pairs = ((frame, frame.f_lineno) for frame in frames)
    return traceback.StackSummary.extract(pairs, lookup_lines=False)


def thread_stack(ident: int, after: CodeType | None = None) -> traceback.StackSummary | None:
    """The stack of thread ``ident`` now, or None when it is not running."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return None
    frames = [f for f, _ in traceback.walk_stack(frame)]
    frames.reverse()
    return _summary(frames, after)


def coroutine_frames(coro: Any) -> Iterator[FrameType]:
    """The frames of ``coro`` and of what it awaits, outermost first."""
    for _ in range(MAX_DEPTH):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            return
        yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if coro is None:
            return


def task_stack(
    task: asyncio.Task[Any], after: CodeType | None = None
) -> traceback.StackSummary | None:
    """The stack of a suspended task, down to the innermost awaited coroutine."""
    if task.done():
        return None
    frames = list(coroutine_frames(task.get_coro()))
    if not frames:
        frames = task.get_stack(limit=MAX_DEPTH)
    return _summary(frames, after)


def format_report(headline: str, stack: traceback.StackSummary | None) -> str:
    """The slow-log entry: the headline, then the stack (source lines are read here)."""
    if stack is None:  # a request that never reached its handler
        return headline
    lines = "".join(stack.format()).rstrip("\n")
    return f"{headline}\nStack (most recent call last):\n{lines}"


def emit(headline: str, stack: traceback.StackSummary | None) -> None:
    """Log a slow-request report (runs in the writer thread)."""
    log.warning("%s", format_report(headline, stack))
