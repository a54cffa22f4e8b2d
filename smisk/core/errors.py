"""The classic exception names. Rules: no imports beyond the standard library.

``IOError`` subclasses the built-in ``OSError`` so ``except IOError``/``except OSError`` in legacy
code keeps catching what smisk raises for stream and socket failures.
"""

from __future__ import annotations

import builtins

__all__ = ["Error", "IOError", "InvalidSessionError", "RequestTimeout", "ServiceUnavailable"]


class Error(Exception):
    """Base class of smisk's own errors."""


class IOError(Error, builtins.OSError):
    """An I/O error on a request's streams or a listening socket."""


class InvalidSessionError(ValueError):
    """A session store has no (valid) data for a session id."""


class ServiceUnavailable(Error):
    """A backing service (e.g. the session store) is unreachable; answered with HTTP 503."""

    status = 503


class RequestTimeout(Error):
    """The handler ran past its deadline; answered with HTTP 504."""

    status = 504
