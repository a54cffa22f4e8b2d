"""Operations: access log, status endpoint, slow-request log, request timeout, load shedding.

Rules: nothing here runs unless asked: ``wrap_handler`` returns the handler unchanged when no
option is set, so the request path costs nothing extra. ``OpsConfig`` is plain data; the work
happens in ``smisk.runtime.ops.handler.OpsHandler``, one per worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smisk.runtime.ops.accesslog import FORMATS, AccessFormat, reopen_logs
from smisk.runtime.ops.status import DEFAULT_STATUS_ALLOW, CounterBlock, StatusAccess

if TYPE_CHECKING:
    from smisk.runtime.ops.handler import Handler, OpsHandler

__all__ = [
    "FORMATS",
    "QUEUE_PER_THREAD",
    "CounterBlock",
    "OpsConfig",
    "reopen_logs",
    "wrap_handler",
]

# --max-queue's default, per handler thread: with every thread busy, this many requests per
# thread may wait before new ones get 503. Two handler run-times of queueing keep bursts served
# while a saturated worker sheds load quickly instead of letting latency grow without bound.
QUEUE_PER_THREAD = 2


@dataclass(frozen=True, slots=True)
class OpsConfig:
    """What a worker does besides serving (smisk-serve's operations options)."""

    access_log: str | None = None  # "combined", "common", "json" or a "{field}" template
    access_log_file: str | None = None  # a path; None or "-": stderr
    status_path: str | None = None  # e.g. "/smisk-status"
    status_allow: str = DEFAULT_STATUS_ALLOW  # who may read it: networks and "unix"
    slow_request_timeout: float = 0.0  # seconds in a handler before its stack is logged
    request_timeout: float = 0.0  # seconds before a request is answered 504
    max_queue: int | None = None  # requests waiting for a thread; None: QUEUE_PER_THREAD each

    def __post_init__(self) -> None:
        if self.access_log:
            AccessFormat(self.access_log)  # raises ValueError for an unknown format
        if self.status_path is not None and not self.status_path.startswith("/"):
            raise ValueError(f"the status path must start with '/': {self.status_path!r}")
        try:
            StatusAccess.parse(self.status_allow)
        except ValueError as error:
            raise ValueError(f"status allow list: {error}") from None
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError("max_queue must not be negative")

    @property
    def observes(self) -> bool:
        """True when requests are timed and logged (not only shed)."""
        return bool(
            self.access_log
            or self.status_path
            or self.slow_request_timeout > 0
            or self.request_timeout > 0
        )

    def queue_limit(self, threads: int) -> int:
        """Requests allowed to wait for one of ``threads`` threads (0: never shed)."""
        return QUEUE_PER_THREAD * threads if self.max_queue is None else self.max_queue


def wrap_handler(
    inner: Handler,
    config: OpsConfig | None,
    *,
    pool_owner: object | None = None,
    block: CounterBlock | None = None,
    slot: int = 1,
) -> Handler | OpsHandler:
    """``inner`` behind an ``OpsHandler`` when ``config`` asks for anything, else ``inner``.

    ``pool_owner`` holds the ``executor`` running sync handlers (default: ``inner``); without
    one (async applications) there is nothing to shed.
    """
    if config is None:
        return inner
    owner = inner if pool_owner is None else pool_owner
    threaded = getattr(owner, "executor", None) is not None
    if not config.observes and not (threaded and config.queue_limit(1) > 0):
        return inner
    from smisk.runtime.ops.handler import OpsHandler

    return OpsHandler(inner, config, pool_owner=owner, block=block, slot=slot)
