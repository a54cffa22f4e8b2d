"""The classic ``smisk.core`` namespace: ``from smisk.core import Application, URL, ...``."""

from __future__ import annotations

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

__all__ = [
    "URL",
    "Application",
    "Error",
    "IOError",
    "InvalidSessionError",
    "Request",
    "Response",
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
