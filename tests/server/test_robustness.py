"""Misbehaving and vanishing peers, and many peers at once: each affects only its own connection."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable

import pytest

from smisk.protocol.records import encode_record
from tests.server.conftest import Address, Connect
from tests.support import handlers
from tests.support.fcgi_client import (
    END,
    STDOUT,
    FastCGIClient,
    begin_record,
    params_records,
    request_bytes,
)
from tests.support.serving import ServerThread, wait_until


def uri(path: str) -> dict[str, str]:
    return {"REQUEST_URI": path}


def served_fresh(connect: Connect) -> bool:
    return connect().request(params=uri("/hello")).split()[1] == b"Hello World!"


BAD_INPUT = {
    "garbage": b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    "binary garbage": bytes(range(255, 0, -1)),
    "wrong version": struct.pack(">BBHHBx", 2, 1, 1, 8, 0) + bytes(8),
    "BEGIN_REQUEST body too short": encode_record(1, 1, b"\x00\x01\x01"),
    "record type invalid mid-request": (
        request_bytes(1, uri("/wait-abort"))[:-8] + encode_record(6, 1, b"stdout from the peer")
    ),
    "malformed params": begin_record(1) + encode_record(4, 1, b"\x7fshort") + encode_record(4, 1),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_protocol_violation_closes_only_that_connection(
    server: ServerThread, connect: Connect, name: str
) -> None:
    bystander = connect()
    bystander.send(request_bytes(1, uri("/wait-abort")))
    assert bystander.read_record() is not None  # in flight on another connection

    offender = connect()
    offender.send(BAD_INPUT[name])
    assert offender.at_eof()

    assert served_fresh(connect)
    bystander.send(encode_record(2, 1))  # ABORT: the bystander's request still works
    assert bystander.read_response(1).protocol_status == 0
    assert bystander.request(params=uri("/hello")).split()[1] == b"Hello World!"


def test_truncated_header_then_close(server: ServerThread, connect: Connect) -> None:
    offender = connect()
    offender.send(begin_record(1)[:5])
    offender.sock.shutdown(socket.SHUT_WR)
    assert offender.at_eof()
    assert served_fresh(connect)
    # Only the fresh client's connection is left open on the server.
    wait_until(lambda: len(server.server.connections) == 1, what="offender forgotten")


def test_truncated_record_then_close_mid_request(server: ServerThread, connect: Connect) -> None:
    offender = connect()
    offender.send(
        begin_record(1) + params_records(1, uri("/echo")) + encode_record(5, 1, b"x" * 100)[:50]
    )
    wait_until(lambda: server.server.stats.requests_started == 1, what="request started")
    offender.sock.shutdown(socket.SHUT_WR)
    assert offender.at_eof()
    wait_until(lambda: server.server.stats.requests_finished == 1, what="handler told")
    assert served_fresh(connect)


def test_begin_request_for_active_id_closes_connection(connect: Connect) -> None:
    client = connect()
    client.send(request_bytes(1, uri("/wait-abort")))
    assert client.read_record() is not None
    client.send(begin_record(1))
    assert client.at_eof()
    wait_until(lambda: handlers.EVENTS == ["aborted 1"], what="handler cancelled")
    assert served_fresh(connect)


def test_peer_disconnect_mid_request_tells_every_request(
    server: ServerThread, connect: Connect
) -> None:
    other = connect()
    other.send(request_bytes(1, uri("/hold?key=disconnect")))
    leaving = connect()
    leaving.send(request_bytes(1, uri("/wait-abort")) + request_bytes(2, uri("/wait-abort")))
    seen = {leaving.read_record()[1], leaving.read_record()[1]}  # type: ignore[index]
    assert seen == {1, 2}
    leaving.close()
    wait_until(
        lambda: (
            sorted(e for e in handlers.EVENTS if e.startswith("aborted"))
            == ["aborted 1", "aborted 2"]
        ),
        what="both requests told",
    )
    assert served_fresh(connect)
    connect().request(params=uri("/release?key=disconnect"))
    assert other.read_response(1).split()[1] == b"released disconnect"


def test_peer_disconnect_while_server_writes(server: ServerThread, connect: Connect) -> None:
    leaving = connect()
    leaving.send(request_bytes(1, uri("/big?n=50000000&chunk=65536")))
    assert leaving.read_record() is not None
    leaving.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaving.close()  # reset while the handler is blocked writing
    wait_until(lambda: server.server.stats.requests_finished == 1, what="writer released")
    assert served_fresh(connect)


async def one_request(address: Address, request_id: int, path: str) -> bytes:
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request_bytes(request_id, uri(path), keep_conn=False))
        return await reader.read()  # the server closes after END_REQUEST
    finally:
        writer.close()
        await writer.wait_closed()


def parse_records(data: bytes) -> list[tuple[int, int, bytes]]:
    records, pos = [], 0
    while pos < len(data):
        _, rtype, rid, length, padding = struct.unpack_from(">BBHHBx", data, pos)
        records.append((rtype, rid, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + padding
    return records


def test_500_concurrent_connections(server: ServerThread, address: Address) -> None:
    """Every request waits at a barrier until all 500 are in flight together, then all answer."""
    count = 500

    async def run_all() -> list[bytes]:
        path = f"/barrier?n={count}&key=c500"
        jobs = [one_request(address, 1 + i % 7, path) for i in range(count)]
        return await asyncio.wait_for(asyncio.gather(*jobs), 60)

    started = time.monotonic()
    replies = asyncio.run(run_all())
    elapsed = time.monotonic() - started
    for i, reply in enumerate(replies):
        records = parse_records(reply)
        rid = 1 + i % 7
        assert records[0] == (STDOUT, rid, b"Content-Type: text/plain\r\n\r\n" + str(rid).encode())
        assert records[-1][0] == END and records[-1][2][4] == 0
    assert server.server.stats.accepted_connections == count
    assert elapsed < 30


def test_client_helpers_parse_like_the_client(address: Address) -> None:
    with FastCGIClient(address) as client:
        client.send(request_bytes(1, uri("/hello"), keep_conn=False))
        data = b""
        while chunk := client.sock.recv(65536):
            data += chunk
    assert [r[0] for r in parse_records(data)] == [STDOUT, STDOUT, END]


def test_connections_beyond_max_connections_wait_until_one_closes(
    make_server: Callable[..., ServerThread],
) -> None:
    served = make_server(max_connections=2)
    address = served.addresses[0]
    with FastCGIClient(address) as first, FastCGIClient(address) as second:
        assert first.get_values([b"FCGI_MAX_CONNS"]) == [(b"FCGI_MAX_CONNS", b"2")]
        second.send(request_bytes(1, uri("/hold?key=max")))
        wait_until(lambda: "holding max" in handlers.EVENTS, what="request in flight")
        # Over the limit the server reports, accepting pauses: the third waits in the
        # listen backlog instead of being accepted and dropped.
        third = FastCGIClient(address)
        third.send(request_bytes(1, uri("/hello")))
        assert served.server.stats.accept_pauses == 1
        assert len(served.server.connections) == 2
        first.request(params=uri("/release?key=max"))
        assert second.read_response(1).split()[1] == b"released max"
    with third:
        assert third.read_response(1).split()[1] == b"Hello World!"
    wait_until(lambda: not served.server.connections, what="all closed")
    with FastCGIClient(address) as again:
        assert again.request(params=uri("/hello")).split()[1] == b"Hello World!"
