"""FastCGI 1.0 constants and the protocol's limits. Rules: no I/O; every limit carries its reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "HEADER_SIZE",
    "KEEP_CONN",
    "MAX_CONTENT_LENGTH",
    "VERSION",
    "Limits",
    "ProtocolStatus",
    "RecordType",
    "Role",
]

VERSION = 1  # The only version FastCGI ever defined.
HEADER_SIZE = 8  # Every record starts with an 8-byte header.
MAX_CONTENT_LENGTH = 65535  # contentLength is a 16-bit field.
PADDING_ALIGNMENT = 8  # The spec recommends 8-byte aligned records; peers expect it.
KEEP_CONN = 1  # FCGI_KEEP_CONN: the flag bit of BEGIN_REQUEST asking to keep the connection open.


class RecordType(IntEnum):
    """FastCGI record types (spec §8)."""

    BEGIN_REQUEST = 1
    ABORT_REQUEST = 2
    END_REQUEST = 3
    PARAMS = 4
    STDIN = 5
    STDOUT = 6
    STDERR = 7
    DATA = 8
    GET_VALUES = 9
    GET_VALUES_RESULT = 10
    UNKNOWN_TYPE = 11


class Role(IntEnum):
    """The roles a request may ask the application to play."""

    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


class ProtocolStatus(IntEnum):
    """protocolStatus values of END_REQUEST."""

    REQUEST_COMPLETE = 0
    CANT_MPX_CONN = 1
    OVERLOADED = 2
    UNKNOWN_ROLE = 3


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one peer may make the server hold. Exceeding one affects only the request
    (or, for per-connection limits, the connection) that crossed it."""

    # One request's encoded PARAMS: headers plus CGI variables. nginx's default header buffers
    # hold 32 KiB; a megabyte leaves room for odd front ends yet bounds memory per request.
    max_params_bytes: int = 1024 * 1024
    # Number of name-value pairs per request: bounds dict work done for a hostile peer.
    max_params_count: int = 2000
    # Requests in flight on one connection (multiplexing): bounds tasks created by one peer.
    max_requests_per_connection: int = 128
    # Whether several requests may be in flight on one connection (reported as FCGI_MPXS_CONNS).
    multiplex: bool = True
