"""The asyncio shell, the socket: listeners, connections, request cycles, flow control, limits,
the handler thread pool and graceful close.

Rules: the only package that touches sockets. Imports ``smisk.protocol`` and ``smisk.codec``,
never ``core``, ``sessions``, ``adapters`` or ``runtime``.
"""

from __future__ import annotations

from smisk.server.cycle import Handler, RequestCycle
from smisk.server.listener import (
    Address,
    Listener,
    bind_listener,
    inherited_listener,
    parse_address,
)
from smisk.server.runner import Server, ServerStats
from smisk.server.streams import BodyStream, ClientGone

__all__ = [
    "Address",
    "BodyStream",
    "ClientGone",
    "Handler",
    "Listener",
    "RequestCycle",
    "Server",
    "ServerStats",
    "bind_listener",
    "inherited_listener",
    "parse_address",
]
