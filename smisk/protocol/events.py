"""Events the sans-IO connection hands to the layer above.

Rules: frozen, slotted, bytes-like only: body chunks (``Stdin.data``, ``Data.data``) are bytes
or, for large ones, read-only memoryviews of the bytes received (``records.ZERO_COPY_CONTENT``).
"""

from __future__ import annotations

from dataclasses import dataclass

from smisk.protocol.constants import Role
from smisk.protocol.records import Content

__all__ = [
    "Data",
    "DataEnd",
    "Event",
    "RequestAborted",
    "RequestReceived",
    "RequestRefused",
    "Stdin",
    "StdinEnd",
]


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """BEGIN_REQUEST and the whole PARAMS stream have arrived: the request can start."""

    request_id: int
    role: Role
    keep_conn: bool
    params: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Stdin:
    """A non-empty chunk of the request body."""

    request_id: int
    data: Content


@dataclass(frozen=True, slots=True)
class StdinEnd:
    """The request body is complete (for AUTHORIZER: there is none)."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Data:
    """A non-empty chunk of the FILTER role's second input stream (the file to filter)."""

    request_id: int
    data: Content


@dataclass(frozen=True, slots=True)
class DataEnd:
    """The FILTER role's data stream is complete."""

    request_id: int


@dataclass(frozen=True, slots=True)
class RequestAborted:
    """The peer sent ABORT_REQUEST; the layer above must end the request promptly.

    It may come before ``RequestReceived`` (an abort while PARAMS were still arriving): the
    request id is active all the same and must be ended with ``end_request``.
    """

    request_id: int


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """A limit refused this request's input; the layer above answers with an HTTP error page
    (``status``) and ends the request. Further input for it is discarded."""

    request_id: int
    status: int
    reason: str


Event = RequestReceived | Stdin | StdinEnd | Data | DataEnd | RequestAborted | RequestRefused
