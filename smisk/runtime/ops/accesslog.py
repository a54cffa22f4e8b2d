"""The access log and the writer thread that does every ops write for the event loop.

Rules: the loop never formats or writes a log line; it appends an entry (a few references) to a
list that is handed to the writer thread at most every ``FLUSH_DELAY`` seconds, so a busy
worker does not wake the thread (and trade the GIL) once per request. The daemon thread formats
each batch and writes it with one ``os.write`` on a file opened with O_APPEND, so lines of
several workers sharing a file never interleave. ``reopen_logs()`` (SIGUSR1) reopens the files
after logrotate moved them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["FORMATS", "AccessEntry", "AccessFormat", "LogWriter", "reopen_logs"]

log = logging.getLogger("smisk.ops")

FORMATS = ("combined", "common", "json")
BATCH = 1024  # entries handed over (and written) at once: bounds one write, keeps syscalls rare
FLUSH_DELAY = 0.1  # seconds an entry may wait on the loop before the thread gets it
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\xff]')  # escaped in quoted fields, as nginx does
_WANTED = {
    b"REMOTE_ADDR": "remote_addr",
    b"REMOTE_USER": "remote_user",
    b"REQUEST_METHOD": "method",
    b"REQUEST_URI": "uri",
    b"SERVER_PROTOCOL": "protocol",
    b"HTTP_REFERER": "referer",
    b"HTTP_USER_AGENT": "user_agent",
    b"HTTP_HOST": "host",
    b"HTTP_X_REQUEST_ID": "request_id",
}
_REOPEN, _STOP = object(), object()
_writers: weakref.WeakSet[LogWriter] = weakref.WeakSet()


class AccessEntry:
    """What the loop records about one finished request; formatted later, in the thread."""

    __slots__ = ("body_bytes", "handler", "params", "queue", "started", "status", "total")

    def __init__(
        self,
        params: list[tuple[bytes, bytes]],
        started: float,
        status: int,
        body_bytes: int,
        times: tuple[float, float, float],
    ) -> None:
        self.params = params
        self.started = started  # wall-clock time the request arrived
        self.status = status
        self.body_bytes = body_bytes
        self.total, self.queue, self.handler = times


def entry_fields(entry: AccessEntry, pid: int) -> dict[str, Any]:
    """Every field a format can use, by name."""
    fields: dict[str, Any] = dict.fromkeys(_WANTED.values(), "")
    for name, value in entry.params:
        key = _WANTED.get(name)
        if key is not None:
            fields[key] = value.decode("latin-1")
    if not fields["uri"]:
        fields["uri"] = "/"
    iso, clf = _times(entry.started)
    fields.update(
        time=iso,
        time_local=clf,
        status=entry.status,
        body_bytes=entry.body_bytes,
        request_time=round(entry.total, 6),
        queue_time=round(entry.queue, 6),
        handler_time=round(entry.handler, 6),
        pid=pid,
    )
    return fields


_second_cache: list[Any] = [None, "", "", ""]  # second, ISO prefix, ISO zone, CLF time


def _times(when: float) -> tuple[str, str]:
    """(ISO 8601 with milliseconds, CLF) local times; formatted once per second."""
    second = int(when)
    cache = _second_cache
    if cache[0] != second:
        local = time.localtime(second)
        zone = time.strftime("%z", local)
        month = _MONTHS[local.tm_mon - 1]
        clock = time.strftime("%H:%M:%S", local)
        cache[:] = [
            second,
            time.strftime("%Y-%m-%dT", local) + clock,
            f"{zone[:3]}:{zone[3:]}",
            f"{local.tm_mday:02d}/{month}/{local.tm_year}:{clock} {zone}",
        ]
    return f"{cache[1]}.{int(when % 1 * 1000):03d}{cache[2]}", cache[3]


def _quoted(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02X}", text) if text else "-"


def _common(f: dict[str, Any]) -> str:
    request = f"{f['method']} {f['uri']} {f['protocol']}".strip()
    return (
        f"{f['remote_addr'] or '-'} - {_quoted(f['remote_user'])} [{f['time_local']}] "
        f'"{_quoted(request)}" {f["status"]} {f["body_bytes"]}'
    )


def _combined(f: dict[str, Any]) -> str:
    return (
        f'{_common(f)} "{_quoted(f["referer"])}" "{_quoted(f["user_agent"])}" '
        f"request_time={f['request_time']:.3f} queue_time={f['queue_time']:.3f} "
        f"handler_time={f['handler_time']:.3f}"
    )


def _json(f: dict[str, Any]) -> str:
    del f["time_local"]
    return json.dumps(f, ensure_ascii=True, separators=(",", ":"))


class AccessFormat:
    """``combined`` (Apache's, plus the three times), ``common``, ``json``, or a template with
    ``{field}`` names (``{remote_addr} {uri} {status} {queue_time}``). Raises ValueError for a
    template that names an unknown field."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        named = {"combined": _combined, "common": _common, "json": _json}
        self._format: Callable[[dict[str, Any]], str] = named.get(spec) or self._template
        if spec not in named:
            if "{" not in spec:
                raise ValueError(f"access log format must be {', '.join(FORMATS)} or a template")
            sample = entry_fields(AccessEntry([], 0.0, 200, 0, (0.0, 0.0, 0.0)), 0)
            try:
                spec.format_map(sample)
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"bad access log template {spec!r}: {error}") from None

    def _template(self, fields: dict[str, Any]) -> str:
        return self.spec.format_map(fields)

    def line(self, entry: AccessEntry, pid: int) -> str:
        """One log line (without the newline)."""
        return self._format(entry_fields(entry, pid))


class LogWriter:
    """A daemon thread writing access-log lines to ``path`` (stderr when None or ``-``) and
    running other deferred work (slow-log reports) off the loop."""

    def __init__(self, access: AccessFormat | None, path: str | None = None) -> None:
        self.access = access
        self.path = None if path in (None, "-") else path
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: list[object] = []  # on the loop, not yet handed to the thread
        self._flusher: asyncio.TimerHandle | None = None
        self._fd = self._open()
        self._pid = os.getpid()
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="smisk-ops-log", daemon=True)
        self._thread.start()
        _writers.add(self)

    def _open(self) -> int:
        if self.path is None:
            return sys.stderr.fileno()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.path, flags, 0o644)

    # -- the loop's side (never blocks) ------------------------------------------------------

    def put(self, item: AccessEntry | Callable[[], None]) -> None:
        """Queue an access entry or a callable to run in the writer thread (from the loop;
        without a running loop it goes to the thread at once)."""
        pending = self._pending
        pending.append(item)
        if len(pending) >= BATCH:
            self.flush()
        elif self._flusher is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flusher = loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Hand what waits on the loop to the thread now."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._pending:
            batch, self._pending = self._pending, []
            self._queue.put(batch)

    def reopen(self) -> None:
        """Reopen the file after the entries queued so far are written."""
        self.flush()
        self._queue.put(_REOPEN)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread (blocks: call it off the loop, after
        ``flush()`` on it)."""
        _writers.discard(self)
        if self._pending:
            batch, self._pending = self._pending, []
            self._queue.put(batch)
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self.path is not None:
            os.close(self._fd)

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if not self._handle(item if isinstance(item, list) else [item]):
                return

    def _handle(self, batch: list[object]) -> bool:
        lines: list[str] = []
        for item in batch:
            if isinstance(item, AccessEntry) and self.access is not None:
                lines.append(self._line(item))
            elif item is _REOPEN or item is _STOP:
                self._write(lines)
                lines = []
                if item is _STOP:
                    return False
                self._reopen_file()
            elif callable(item):
                self._call(item)
        self._write(lines)
        return True

    def _line(self, entry: AccessEntry) -> str:
        assert self.access is not None
        try:
            return self.access.line(entry, self._pid) + "\n"
        except Exception:  # a template or a value it cannot take: keep serving and logging
            log.exception("could not format an access log line")
            return ""

    def _call(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:
            log.exception("deferred ops work failed")

    def _write(self, lines: list[str]) -> None:
        data = "".join(lines).encode("utf-8", "replace")
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError as error:
            if not self._failed:  # once: a full disk must not flood the other log
                self._failed = True
                log.error("cannot write the access log %s: %s", self.path or "<stderr>", error)

    def _reopen_file(self) -> None:
        if self.path is None:
            return
        try:
            fd = self._open()
        except OSError as error:
            log.error("cannot reopen the access log %s: %s", self.path, error)
            return
        os.close(self._fd)
        self._fd, self._failed = fd, False


def reopen_logs() -> None:
    """Reopen every access log of this process (SIGUSR1); returns at once."""
    for writer in list(_writers):
        writer.reopen()
