#!/usr/bin/env python3
"""Fuzz the FastCGI record reader and connection state machine with raw peer bytes.

Checks: only ``RemoteProtocolError`` escapes; feeding in pieces gives the same events, output
and error as feeding whole; every event names an active request; every active request can be ended and
the output then parses as records; buffered input never exceeds one record (64 KiB + header).
"""

from __future__ import annotations

import sys

import atheris
from _harness import cuts, instrumented, main

with instrumented():
    from smisk.protocol import FastCGIConnection, Limits, RemoteProtocolError
    from smisk.protocol.records import RecordReader

MAX_BUFFERED = 8 + 65535 + 255  # one whole record: the reader never needs more than that


def _feed(conn: FastCGIConnection, pieces: list[bytes]) -> tuple[list[object], bytes, bool]:
    events: list[object] = []
    try:
        for piece in pieces:
            for event in conn.receive_data(piece):
                assert conn.is_active(event.request_id), event
                events.append(event)
            assert conn._reader.buffered <= MAX_BUFFERED
    except RemoteProtocolError:
        return events, conn.data_to_send(), True
    return events, conn.data_to_send(), False


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limits = Limits(
        max_params_bytes=fdp.ConsumeIntInRange(1, 4096),
        max_params_count=fdp.ConsumeIntInRange(0, 40),
        max_requests_per_connection=fdp.ConsumeIntInRange(1, 8),
        multiplex=fdp.ConsumeBool(),
    )
    raw = fdp.ConsumeBytes(fdp.remaining_bytes() // 2)
    pieces = cuts(fdp, raw)
    whole = _feed(FastCGIConnection(limits), [raw])
    split_conn = FastCGIConnection(limits)
    split = _feed(split_conn, pieces)
    failed = split[2]
    if whole[2] and failed:  # events before an error are dropped with the connection
        whole, split = whole[1:], split[1:]
    if whole != split:
        raise AssertionError(f"whole {whole!r} != split {split!r}")
    if failed:
        return
    for request_id in sorted(split_conn.active_requests):
        split_conn.send_stdout(request_id, b"x")
        split_conn.end_request(request_id)
    records = RecordReader().feed(split_conn.data_to_send())
    assert all(0 <= rtype <= 255 for rtype, _, _ in records)
    assert not split_conn.active_requests


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
