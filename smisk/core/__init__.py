"""The classic API, what a Request is: Application, Request, Response, Stream, URL, forms,
cookies, error pages, the current-request proxies and the front-end normalisation of params.

Rules: imports ``server``, ``protocol``, ``codec`` and its sibling ``sessions``; never
``adapters`` or ``runtime`` (``Application.run()`` reaches the runtime at call time only).
``SessionStore`` and ``FileSessionStore`` come from ``smisk.sessions`` on first use.
"""

from __future__ import annotations

from typing import Any

from smisk._build import __build__
from smisk.codec import pack, uid
from smisk.core.application import Application
from smisk.core.context import app, request, response
from smisk.core.errors import Error, InvalidSessionError, IOError
from smisk.core.hashing import object_hash
from smisk.core.http_request import Request
from smisk.core.http_response import Response
from smisk.core.listen import bind, listening, unbind
from smisk.core.stream import Stream
from smisk.core.url import URL

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
