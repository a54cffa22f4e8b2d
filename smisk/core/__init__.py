"""The classic ``smisk.core`` namespace: ``from smisk.core import Application, URL, ...``.

``SessionStore`` and ``FileSessionStore`` come from ``smisk.sessions`` on first use, so importing
``smisk.core`` does not load the session stores.
"""

from __future__ import annotations

from typing import Any

from smisk._build import __build__
from smisk._hash import object_hash
from smisk.application import Application
from smisk.codec import pack, uid
from smisk.context import app, request, response
from smisk.errors import Error, InvalidSessionError, IOError
from smisk.request import Request
from smisk.response import Response
from smisk.serving import bind, listening, unbind
from smisk.stream import Stream
from smisk.url import URL

from . import xml

_FROM_SESSIONS = ("SessionStore", "FileSessionStore")


def __getattr__(name: str) -> Any:
    if name in _FROM_SESSIONS:
        import smisk.sessions

        return getattr(smisk.sessions, name)
    raise AttributeError(f"module 'smisk.core' has no attribute {name!r}")


__all__ = [
    "URL",
    "Application",
    "Error",
    "FileSessionStore",
    "IOError",
    "InvalidSessionError",
    "Request",
    "Response",
    "SessionStore",
    "Stream",
    "__build__",
    "app",
    "bind",
    "listening",
    "object_hash",
    "pack",
    "request",
    "response",
    "uid",
    "unbind",
    "xml",
]
