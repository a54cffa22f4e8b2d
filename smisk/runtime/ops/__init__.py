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
    "DEFAULT_MAX_QUEUE_TIME",
    "FORMATS",
    "CounterBlock",
    "OpsConfig",
    "reopen_logs",
    "wrap_handler",
]

# --max-queue-time's default, in seconds. Load is shed by how long requests wait for a handler
# thread, not by how many wait: a burst of a thousand requests to a fast handler drains in tens
# of milliseconds and must be served, while a queue that stays this old (or is predicted to take
# this long to drain) means the worker is saturated and waiting only grows. Well above a burst's
# drain time, well below any client's patience.
DEFAULT_MAX_QUEUE_TIME = 0.5


@dataclass(frozen=True, slots=True)
class OpsConfig:
    """What a worker does besides serving (smisk-serve's operations options)."""

    access_log: str | None = None  # "combined", "common", "json" or a "{field}" template
    access_log_file: str | None = None  # a path; None or "-": stderr
    status_path: str | None = None  # e.g. "/smisk-status"
    status_allow: str = DEFAULT_STATUS_ALLOW  # who may read it: networks and "unix"
    slow_request_timeout: float = 0.0  # seconds in a handler before its stack is logged
    request_timeout: float = 0.0  # seconds before a request is answered 504
    max_queue: int | None = None  # requests waiting for a thread before 503; None or 0: no cap
    max_queue_time: float = DEFAULT_MAX_QUEUE_TIME  # seconds of queueing before 503; 0: off

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
        if self.max_queue_time < 0:
            raise ValueError("max_queue_time must not be negative")

    @property
    def observes(self) -> bool:
        """True when requests are timed and logged (not only shed)."""
        return bool(
            self.access_log
            or self.status_path
            or self.slow_request_timeout > 0
            or self.request_timeout > 0
        )

    @property
    def sheds(self) -> bool:
        """True when a sync handler's queue is watched for overload."""
        return self.max_queue_time > 0 or bool(self.max_queue)


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
    if not config.observes and not (threaded and config.sheds):
        return inner
    from smisk.runtime.ops.handler import OpsHandler

    return OpsHandler(inner, config, pool_owner=owner, block=block, slot=slot)
