"""The asyncio shell: listeners, connections, request cycles, graceful close.

Rules: the only package that touches sockets; it imports ``smisk.protocol`` and never the
application layer.
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
