"""Protocol errors. Rules: one base class; "local" means the API was misused by the layer above,
"remote" means the peer sent something that breaks FastCGI 1.0."""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of every FastCGI protocol error."""


class LocalProtocolError(ProtocolError):
    """The layer above used the connection wrongly (e.g. wrote to a request that has ended)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the connection cannot be trusted and must be closed."""
