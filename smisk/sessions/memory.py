# Rules: no I/O; every method is short and holds the mutex only around the dict.
"""MemorySessionStore: sessions in this process's memory (one process; lost on restart)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from smisk.core.errors import InvalidSessionError
from smisk.sessions.base import SessionStore
from smisk.sessions.ids import check_id

__all__ = ["MemorySessionStore"]


class MemorySessionStore(SessionStore):
    """Sessions kept as serialized bytes in a dict (so a reader never shares live objects).

    For one process only (tests, development, ``smisk-serve`` without workers). Expired entries
    are dropped when read and, with probability ``gc_probability`` per write, in a sweep.
    """

    blocking = False  # no I/O: async services call these methods directly on the loop
    gc_probability: float = 0.1

    def __init__(self, *, gc_probability: float | None = None, **options: Any) -> None:
        super().__init__(**options)
        if gc_probability is not None:
            self.gc_probability = gc_probability
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._mutex = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, session_id: str) -> Any:
        """The data of ``session_id``; InvalidSessionError when unknown or expired."""
        check_id(session_id)
        now = time.monotonic()
        with self._mutex:
            entry = self._entries.get(session_id)
            if entry is not None and entry[1] <= now:
                del self._entries[session_id]
                entry = None
        if entry is None:
            raise InvalidSessionError("no data")
        return self.serializer.loads(entry[0])

    def write(self, session_id: str, data: Any) -> None:
        """Store ``data`` for ``ttl`` seconds."""
        check_id(session_id)
        blob = self.serializer.dumps(data)
        with self._mutex:
            self._entries[session_id] = (blob, time.monotonic() + self.ttl)
        if random.random() < self.gc_probability:
            self.collect()

    def refresh(self, session_id: str) -> None:
        """Restart the TTL of ``session_id`` if it exists."""
        check_id(session_id)
        with self._mutex:
            entry = self._entries.get(session_id)
            if entry is not None:
                self._entries[session_id] = (entry[0], time.monotonic() + self.ttl)

    def destroy(self, session_id: str) -> None:
        """Forget ``session_id``."""
        check_id(session_id)
        with self._mutex:
            self._entries.pop(session_id, None)

    def collect(self) -> int:
        """Drop expired entries; returns how many."""
        now = time.monotonic()
        with self._mutex:
            expired = [key for key, (_, expires) in self._entries.items() if expires <= now]
            for key in expired:
                del self._entries[key]
        return len(expired)
