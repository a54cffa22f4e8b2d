"""Test-side FastCGI peer: builds the web server's records and reads the application's replies.

Rules: built on ``encode_record`` only, so a bug in the connection cannot hide in the helpers; no
event loop. ``connection_three_ways`` is the h11-style harness: every vector is fed whole, one byte
at a time, and followed by a partial record that must stay buffered.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import pairwise

import pytest

from smisk.codec import encode_params
from smisk.protocol import (
    KEEP_CONN,
    Event,
    FastCGIConnection,
    Limits,
    RecordReader,
    RecordType,
    RemoteProtocolError,
    Role,
    encode_record,
)

Pairs = Sequence[tuple[bytes, bytes]]
Record = tuple[int, int, bytes]

CHUNK = 65535  # the largest content one record can carry
SAMPLE_PARAMS: list[tuple[bytes, bytes]] = [
    (b"REQUEST_METHOD", b"GET"),
    (b"SCRIPT_NAME", b"/app"),
    (b"HTTP_COOKIE", b"a=1"),
    (b"HTTP_COOKIE", b"b=2"),
    (b"EMPTY", b""),
]


# -- the web server's records -------------------------------------------------------------------


def record(record_type: int, request_id: int, content: bytes = b"", padding: int = 0) -> bytes:
    """One record with an explicit padding length (``encode_record`` always aligns to 8)."""
    header = struct.pack(">BBHHBx", 1, record_type, request_id, len(content), padding)
    return header + content + b"\xaa" * padding


def begin_body(role: int = Role.RESPONDER, flags: int = 0) -> bytes:
    return struct.pack(">HB5x", role, flags)


def begin(request_id: int = 1, role: int = Role.RESPONDER, keep_conn: bool = False) -> bytes:
    flags = KEEP_CONN if keep_conn else 0
    return encode_record(RecordType.BEGIN_REQUEST, request_id, begin_body(role, flags))


def stream(record_type: int, request_id: int, data: bytes, end: bool = True) -> bytes:
    """``data`` as records of at most 65535 bytes, then (``end``) the empty record ending it."""
    parts = [
        encode_record(record_type, request_id, data[i : i + CHUNK])
        for i in range(0, len(data), CHUNK)
    ]
    if end:
        parts.append(encode_record(record_type, request_id))
    return b"".join(parts)


def params(request_id: int = 1, pairs: Pairs = (), end: bool = True) -> bytes:
    return stream(RecordType.PARAMS, request_id, encode_params(list(pairs)), end)


def params_chunks(request_id: int, raw: bytes, cuts: Iterable[int]) -> bytes:
    """The raw PARAMS stream ``raw`` cut at the offsets ``cuts``, plus its empty record."""
    edges = [0, *cuts, len(raw)]
    parts = [encode_record(RecordType.PARAMS, request_id, raw[a:b]) for a, b in pairwise(edges)]
    return b"".join(parts) + encode_record(RecordType.PARAMS, request_id)


def stdin(request_id: int = 1, data: bytes = b"", end: bool = True) -> bytes:
    return stream(RecordType.STDIN, request_id, data, end)


def data(request_id: int = 1, payload: bytes = b"", end: bool = True) -> bytes:
    return stream(RecordType.DATA, request_id, payload, end)


def abort(request_id: int = 1) -> bytes:
    return encode_record(RecordType.ABORT_REQUEST, request_id)


def get_values(*names: bytes) -> bytes:
    return encode_record(RecordType.GET_VALUES, 0, encode_params([(n, b"") for n in names]))


def request(
    request_id: int = 1,
    role: int = Role.RESPONDER,
    pairs: Pairs = SAMPLE_PARAMS,
    body: bytes = b"",
    keep_conn: bool = False,
) -> bytes:
    """A whole request as a web server sends it (FILTER gets an empty DATA stream)."""
    out = begin(request_id, role, keep_conn) + params(request_id, pairs)
    if role != Role.AUTHORIZER:
        out += stdin(request_id, body)
    if role == Role.FILTER:
        out += data(request_id)
    return out


# -- the application's replies ------------------------------------------------------------------


def parse_records(raw: bytes) -> list[Record]:
    """Split ``raw`` into records, checking the writer's framing on the way."""
    reader = RecordReader()
    records = reader.feed(raw)
    assert reader.buffered == 0, "output ends inside a record"
    pos = 0
    for _, _, content in records:
        length, padding = struct.unpack_from(">HB", raw, pos + 4)
        assert raw[pos] == 1 and length == len(content) <= CHUNK
        assert (length + padding) % 8 == 0, "output record not padded to 8 bytes"
        pos += 8 + length + padding
    return records


def end_body(app_status: int = 0, protocol_status: int = 0) -> bytes:
    return struct.pack(">IB3x", app_status, protocol_status)


def end_record(request_id: int, app_status: int = 0, protocol_status: int = 0) -> Record:
    return (RecordType.END_REQUEST, request_id, end_body(app_status, protocol_status))


def unknown_type_record(record_type: int) -> Record:
    return (RecordType.UNKNOWN_TYPE, 0, bytes((record_type, 0, 0, 0, 0, 0, 0, 0)))


def stream_content(records: Iterable[Record], record_type: int, request_id: int) -> bytes:
    return b"".join(c for t, i, c in records if t == record_type and i == request_id)


# -- harness ------------------------------------------------------------------------------------


def feed_bytewise(conn: FastCGIConnection, raw: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(raw)):
        events += conn.receive_data(raw[i : i + 1])
    return events


def connection_three_ways(
    raw: bytes, limits: Limits | None = None, max_conns: int = 1024
) -> tuple[list[Event], list[Record]]:
    """Feed ``raw`` whole, byte by byte and with a trailing partial record; all three must agree.

    The trailing bytes are the start of a GET_VALUES record: nothing may answer it until its last
    byte arrives, which proves the partial record stayed buffered.
    """
    whole = FastCGIConnection(limits, max_conns=max_conns)
    events = whole.receive_data(raw)
    out = whole.data_to_send()

    bytewise = FastCGIConnection(limits, max_conns=max_conns)
    assert feed_bytewise(bytewise, raw) == events
    assert bytewise.data_to_send() == out

    probe = get_values(b"FCGI_MPXS_CONNS")
    for cut in (1, 7, 8, len(probe) - 1):
        trailing = FastCGIConnection(limits, max_conns=max_conns)
        assert trailing.receive_data(raw + probe[:cut]) == events
        assert trailing.data_to_send() == out
        assert trailing.receive_data(probe[cut:]) == []
        answer = parse_records(trailing.data_to_send())
        assert [t for t, _, _ in answer] == [RecordType.GET_VALUES_RESULT]
    return events, parse_records(out)


def remote_error_three_ways(raw: bytes, limits: Limits | None = None) -> None:
    """``raw`` must raise RemoteProtocolError fed whole, byte by byte and with trailing bytes; the
    broken connection then keeps raising, even for a record that would otherwise be fine."""
    feeds = (
        lambda conn: conn.receive_data(raw),
        lambda conn: feed_bytewise(conn, raw),
        lambda conn: conn.receive_data(raw + get_values(b"FCGI_MAX_CONNS")[:5]),
    )
    for feed in feeds:
        conn = FastCGIConnection(limits)
        with pytest.raises(RemoteProtocolError):
            feed(conn)
        with pytest.raises(RemoteProtocolError):
            conn.receive_data(get_values(b"FCGI_MAX_CONNS"))
