"""Sessions: stores (files, memory, Redis), ids, and the binding behind ``request.session``.

Rules: one layer with ``smisk.core`` (a Request loads its session through ``binding``); imports
``core``, ``server`` and below, never ``adapters`` or ``runtime``. ``RedisSessionStore`` is
imported on first use (it needs the ``smisk[redis]`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smisk.core.errors import InvalidSessionError, ServiceUnavailable
from smisk.sessions.base import (
    CookiePolicy,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    SessionBusy,
    SessionStore,
)
from smisk.sessions.binding import SessionCookieError, SessionNotLoadedError
from smisk.sessions.file import FileSessionStore
from smisk.sessions.ids import InvalidSessionIdError, check_id, is_valid_id, new_id
from smisk.sessions.memory import MemorySessionStore

if TYPE_CHECKING:
    from smisk.sessions.redis import RedisSessionStore

__all__ = [
    "CookiePolicy",
    "FileSessionStore",
    "InvalidSessionError",
    "InvalidSessionIdError",
    "JSONSerializer",
    "MemorySessionStore",
    "PickleSerializer",
    "RedisSessionStore",
    "Serializer",
    "ServiceUnavailable",
    "SessionBusy",
    "SessionCookieError",
    "SessionNotLoadedError",
    "SessionStore",
    "check_id",
    "is_valid_id",
    "new_id",
]


def __getattr__(name: str) -> Any:
    if name == "RedisSessionStore":
        from smisk.sessions.redis import RedisSessionStore

        return RedisSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
