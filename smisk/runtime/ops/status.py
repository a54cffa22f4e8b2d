"""Operational counters and the status endpoint's JSON and OpenMetrics renderings.

Rules: no I/O. The counters live in a block of 64-bit integers, one slot per worker: with a
supervisor the block is shared memory created before forking, so any worker can answer with the
aggregate of all of them. Each slot has one writer (its worker; thread-side updates take the
worker's lock), so no lock spans processes. When a worker exits, the supervisor folds its
counters into slot 0 (the retired workers), so totals never go back. Durations are kept in
microseconds and rendered in seconds. Who may read the page is decided by ``StatusAccess`` alone.
"""

from __future__ import annotations

import ipaddress
import json
import mmap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from smisk.server.limits import Network, parse_allow_from

__all__ = [
    "DEFAULT_STATUS_ALLOW",
    "FIELDS",
    "CounterBlock",
    "Field",
    "StatusAccess",
    "choose_format",
    "render_json",
    "render_openmetrics",
    "snapshot",
]

COUNTER, GAUGE, HIGH_WATER, INFO = "counter", "gauge", "high-water", "info"


@dataclass(frozen=True, slots=True)
class Field:
    """One value per worker: how it aggregates (``kind``) and what it means."""

    name: str
    kind: str
    help: str
    seconds: bool = False  # kept in microseconds, shown in seconds


FIELDS: tuple[Field, ...] = (
    Field("pid", INFO, "worker process id"),
    Field("start_time", INFO, "when the worker started (Unix time)"),
    Field("requests", COUNTER, "requests answered (the status page's own not counted)"),
    Field("responses_2xx", COUNTER, "responses with a 2xx status"),
    Field("responses_3xx", COUNTER, "responses with a 3xx status"),
    Field("responses_4xx", COUNTER, "responses with a 4xx status (499: the client left)"),
    Field("responses_5xx", COUNTER, "responses with a 5xx status"),
    Field("requests_in_flight", GAUGE, "requests being handled or waiting for a thread"),
    Field("requests_queued", GAUGE, "requests waiting for a handler thread"),
    Field("max_requests_in_flight", HIGH_WATER, "most requests in flight at once"),
    Field("threads", GAUGE, "handler threads (sync service)"),
    Field("threads_busy", GAUGE, "handler threads running a request"),
    Field("threads_exhausted", COUNTER, "requests that found every handler thread busy"),
    Field("shed", COUNTER, "requests answered 503 because the queue was full (--max-queue)"),
    Field("slow_requests", COUNTER, "requests logged by --slow-request-timeout"),
    Field("timed_out_requests", COUNTER, "requests answered 504 by --request-timeout"),
    Field("queue_seconds", COUNTER, "time requests waited for a handler thread", True),
    Field("handler_seconds", COUNTER, "time spent in handlers", True),
    Field("connections_accepted", COUNTER, "connections accepted"),
    Field("connections_active", GAUGE, "connections open"),
    Field("max_connections_reached", COUNTER, "times accepting paused at max_connections"),
    Field("requests_refused", COUNTER, "requests refused by server limits (in flight, body)"),
)
INDEX = {field.name: number for number, field in enumerate(FIELDS)}
SLOT_SIZE = len(FIELDS)
RETIRED = 0  # slot 0 holds the counters of workers that exited

# Field indices used on the request path (module constants: no dict lookup per request).
PID = INDEX["pid"]
START_TIME = INDEX["start_time"]
REQUESTS = INDEX["requests"]
RESPONSES_2XX = INDEX["responses_2xx"]
IN_FLIGHT = INDEX["requests_in_flight"]
QUEUED = INDEX["requests_queued"]
MAX_IN_FLIGHT = INDEX["max_requests_in_flight"]
THREADS = INDEX["threads"]
THREADS_BUSY = INDEX["threads_busy"]
THREADS_EXHAUSTED = INDEX["threads_exhausted"]
SHED = INDEX["shed"]
SLOW = INDEX["slow_requests"]
TIMED_OUT = INDEX["timed_out_requests"]
QUEUE_US = INDEX["queue_seconds"]
HANDLER_US = INDEX["handler_seconds"]
CONNECTIONS_ACCEPTED = INDEX["connections_accepted"]
CONNECTIONS_ACTIVE = INDEX["connections_active"]
MAX_CONNECTIONS_REACHED = INDEX["max_connections_reached"]
REQUESTS_REFUSED = INDEX["requests_refused"]

JSON_TYPE = "application/json"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class CounterBlock:
    """Counter slots for ``capacity`` workers (plus the retired slot 0).

    ``shared=True`` maps anonymous shared memory: create it before forking and every worker
    sees every slot. A private block (one process) lives in ordinary memory.
    """

    def __init__(self, capacity: int = 1, *, shared: bool = False) -> None:
        size = (capacity + 1) * SLOT_SIZE * 8
        memory: mmap.mmap | bytearray = mmap.mmap(-1, size) if shared else bytearray(size)
        self.capacity = capacity
        self.shared = shared
        self._view = memoryview(memory).cast("q")
        self._used: set[int] = set()

    def slot(self, index: int) -> memoryview:
        """The int64 values of slot ``index`` (indices are the ``FIELDS`` positions)."""
        return self._view[index * SLOT_SIZE : (index + 1) * SLOT_SIZE]

    def claim(self) -> int | None:
        """A free worker slot (1..capacity), or None when all are taken (supervisor side)."""
        for index in range(1, self.capacity + 1):
            if index not in self._used:
                self._used.add(index)
                return index
        return None

    def assign(self, index: int, pid: int) -> None:
        """Mark slot ``index`` as worker ``pid``'s (before the worker writes to it)."""
        slot = self.slot(index)
        slot[PID] = pid
        slot[START_TIME] = int(time.time())

    def release(self, index: int) -> None:
        """Fold an exited worker's counters into the retired slot and free its slot. Call only
        once the worker is gone: its slot has no writer left."""
        retired, slot = self.slot(RETIRED), self.slot(index)
        for number, field in enumerate(FIELDS):
            if field.kind == COUNTER:
                retired[number] += slot[number]
            elif field.kind == HIGH_WATER:
                retired[number] = max(retired[number], slot[number])
            slot[number] = 0
        self._used.discard(index)

    def live(self) -> Iterator[memoryview]:
        """Slots of running workers."""
        for index in range(1, self.capacity + 1):
            slot = self.slot(index)
            if slot[PID]:
                yield slot


def _values(slot: memoryview) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for number, field in enumerate(FIELDS):
        value = slot[number]
        values[field.name] = value / 1e6 if field.seconds else value
    return values


def snapshot(block: CounterBlock) -> dict[str, Any]:
    """``{"aggregate": {...}, "workers": [{...}, ...]}``: counters summed over running and
    retired workers, gauges over running ones, high-water marks as the largest."""
    slots = list(block.live())
    retired = block.slot(RETIRED)
    total: dict[str, Any] = {}
    for number, field in enumerate(FIELDS):
        if field.kind == INFO:
            continue
        values = [slot[number] for slot in slots]
        if field.kind == COUNTER:
            value = sum(values) + retired[number]
        elif field.kind == HIGH_WATER:
            value = max([*values, retired[number]])
        else:
            value = sum(values)
        total[field.name] = value / 1e6 if field.seconds else value
    starts = [slot[START_TIME] for slot in slots]
    total["workers"] = len(slots)
    total["start_time"] = min(starts) if starts else 0
    return {"aggregate": total, "workers": [_values(slot) for slot in slots]}


# -- who may read it ----------------------------------------------------------------------------

# The page names process ids, start times and load: by default only this machine may read it.
# "unix" stands for requests without a REMOTE_ADDR (a local FastCGI client) or with a unix-socket
# one (a front end listening on a unix socket).
DEFAULT_STATUS_ALLOW = "127.0.0.0/8,::1,unix"
LOCAL = "unix"


@dataclass(frozen=True, slots=True)
class StatusAccess:
    """The clients (by the REMOTE_ADDR the front end sends) the status page answers."""

    networks: tuple[Network, ...]
    local: bool  # requests without REMOTE_ADDR or from a unix-socket client

    @classmethod
    def parse(cls, text: str) -> StatusAccess:
        """``"127.0.0.0/8, ::1 unix"``: networks and ``unix``, separated by commas or spaces.
        Raises ``ValueError`` naming a bad entry."""
        entries = text.replace(",", " ").split()
        networks = parse_allow_from(" ".join(e for e in entries if e != LOCAL))
        return cls(networks, LOCAL in entries)

    def allows(self, remote_addr: bytes | None) -> bool:
        """True when a request with this REMOTE_ADDR param (None: absent) may read the page."""
        if not remote_addr or remote_addr.startswith(b"unix:"):
            return self.local
        try:
            address = ipaddress.ip_address(remote_addr.decode("latin-1").partition("%")[0])
        except ValueError:
            return False  # not an address: nothing to match
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


# -- renderings ----------------------------------------------------------------------------------


def choose_format(query: str, accept: str) -> str:
    """``"openmetrics"`` or ``"json"``: ``?format=`` wins, then the Accept header (Prometheus
    asks for ``application/openmetrics-text``); JSON by default."""
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "format" and value in ("json", "openmetrics"):
            return value
        if name in ("json", "openmetrics") and not value:
            return name
    if "application/openmetrics-text" in accept or "text/plain" in accept:
        return "openmetrics"
    return "json"


def render_json(snap: dict[str, Any], pid: int, now: float | None = None) -> bytes:
    """The status document as JSON (``pid``: the worker that answered)."""
    now = time.time() if now is None else now
    aggregate = dict(snap["aggregate"])
    aggregate["uptime"] = round(now - aggregate["start_time"], 3) if aggregate["start_time"] else 0
    document = {"pid": pid, "time": round(now, 3), **aggregate, "per_worker": snap["workers"]}
    return json.dumps(document, indent=1).encode() + b"\n"


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _family(name: str, field: Field) -> str:
    suffix = "_seconds" if field.seconds and not name.endswith("_seconds") else ""
    return f"smisk_{name}{suffix}"


def _om_lines(prefix: str, field: Field, samples: list[tuple[str, float]]) -> Iterator[str]:
    kind = "counter" if field.kind == COUNTER else "gauge"
    family = _family(prefix + field.name, field)
    yield f"# TYPE {family} {kind}"
    yield f"# HELP {family} {field.help}"
    if field.seconds:
        yield f"# UNIT {family} seconds"
    sample = f"{family}_total" if kind == "counter" else family
    for labels, value in samples:
        yield f"{sample}{labels} {_number(value)}"


def render_openmetrics(snap: dict[str, Any]) -> bytes:
    """The status as OpenMetrics text: ``smisk_*`` families hold the aggregate of every worker,
    ``smisk_worker_*`` families one sample per running worker, labelled with its pid."""
    aggregate, workers = snap["aggregate"], snap["workers"]
    lines = [
        "# TYPE smisk_workers gauge",
        "# HELP smisk_workers worker processes running",
        f"smisk_workers {aggregate['workers']}",
    ]
    for field in FIELDS:
        if field.kind != INFO:
            lines.extend(_om_lines("", field, [("", aggregate[field.name])]))
    for field in FIELDS:
        if field.kind == INFO and field.name == "pid":
            continue
        samples = [(f'{{pid="{w["pid"]}"}}', w[field.name]) for w in workers]
        lines.extend(_om_lines("worker_", field, samples))
    lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode()
