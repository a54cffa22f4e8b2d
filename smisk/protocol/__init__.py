"""Sans-IO FastCGI 1.0, the FastCGI bytes: records, name-value pairs, per-request state.

Rules: bytes in, events out. Imports only the standard library and ``smisk.codec``; never
asyncio, sockets or any other smisk layer.
"""

from __future__ import annotations

from smisk.protocol.connection import FastCGIConnection
from smisk.protocol.constants import KEEP_CONN, Limits, ProtocolStatus, RecordType, Role
from smisk.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from smisk.protocol.events import (
    Data,
    DataEnd,
    Event,
    RequestAborted,
    RequestReceived,
    RequestRefused,
    Stdin,
    StdinEnd,
)
from smisk.protocol.records import RecordReader, encode_record, encode_stream

__all__ = [
    "KEEP_CONN",
    "Data",
    "DataEnd",
    "Event",
    "FastCGIConnection",
    "Limits",
    "LocalProtocolError",
    "ProtocolError",
    "ProtocolStatus",
    "RecordReader",
    "RecordType",
    "RemoteProtocolError",
    "RequestAborted",
    "RequestReceived",
    "RequestRefused",
    "Role",
    "Stdin",
    "StdinEnd",
    "encode_record",
    "encode_stream",
]
