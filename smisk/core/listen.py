"""The classic ``bind``/``unbind``/``listening``: the socket ``Application.run()`` will serve.

Rules: this module only holds the bound socket; the runtime serves it (``smisk.runtime.handler``).
"""

from __future__ import annotations

from smisk.core.errors import IOError as SmiskIOError
from smisk.server import Listener, bind_listener, inherited_listener

__all__ = ["bind", "forget", "listening", "take_listener", "unbind"]

_bound: Listener | None = None


def bind(path: str, backlog: int = -1) -> None:
    """Listen on ``path``: ``:5000``, ``host:port``, ``[v6]:port`` or a unix socket path."""
    global _bound
    if not isinstance(path, str):
        raise TypeError("first argument must be a string")
    if not isinstance(backlog, int):
        raise TypeError("second argument must be an integer")
    if _bound is not None:
        raise SmiskIOError("already bound")
    _bound = bind_listener(path, backlog)


def unbind() -> None:
    """Close the socket from ``bind()``; no effect when not bound."""
    global _bound
    if _bound is not None:
        listener, _bound = _bound, None
        listener.close()


def listening() -> str | None:
    """The address bound with ``bind()`` (``host:port`` or the socket path), else None."""
    if _bound is None:
        return None
    address = _bound.bound_address
    if address.family == "unix":
        return address.path
    if not _bound.address.host:  # bound to every interface, as ":5000" or "*:5000" asked
        return f"*:{address.port}"
    return str(address)


def take_listener() -> Listener:
    """The socket to serve: the one from ``bind()``, else the one a web server left on fd 0."""
    if _bound is not None:
        return _bound
    inherited = inherited_listener()
    if inherited is None:
        raise OSError("Application must be run in a FastCGI environment")
    return inherited


def forget(listener: Listener) -> None:
    """``run()`` has finished with ``listener``: a later ``bind()`` may bind again."""
    global _bound
    if listener is _bound:
        _bound = None
