"""FastCGI 1.0 conformance of the server over real TCP and unix sockets, driven record by record."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest

from smisk.codec import encode_params
from smisk.protocol import Limits
from smisk.protocol.records import encode_record
from tests.server.conftest import Connect
from tests.support import handlers
from tests.support.fcgi_client import (
    ABORT,
    DATA,
    END,
    PARAMS,
    STDERR,
    STDIN,
    STDOUT,
    UNKNOWN_TYPE,
    FastCGIClient,
    begin_record,
    params_records,
    request_bytes,
    stdin_records,
)
from tests.support.handlers import pattern
from tests.support.serving import ServerThread, wait_until

REQUEST_COMPLETE, CANT_MPX_CONN, UNKNOWN_ROLE = 0, 1, 3
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
MiB = 1024 * 1024


def uri(path: str) -> dict[str, str]:
    return {"REQUEST_URI": path}


def long_length(n: int) -> bytes:
    return (n | 0x80000000).to_bytes(4, "big")


def records_of(request_id: int, rtype: int, data: bytes, chunk: int) -> bytes:
    """``data`` as records of ``chunk`` bytes, then the empty record that ends the stream."""
    parts = [
        encode_record(rtype, request_id, data[i : i + chunk]) for i in range(0, len(data), chunk)
    ]
    return b"".join(parts) + encode_record(rtype, request_id)


def echoed_params(client: FastCGIClient, request_id: int = 1) -> list[list[str]]:
    response = client.read_response(request_id)
    assert response.protocol_status == REQUEST_COMPLETE
    _, body = response.split()
    return json.loads(body)["params"]  # type: ignore[no-any-return]


# -- one request ---------------------------------------------------------------------------------


def test_hello_records(connect: Connect) -> None:
    response = connect().request(params=uri("/hello"))
    headers, body = response.split()
    assert body == b"Hello World!"
    assert headers["content-length"] == "12"
    assert response.records[-2:] == [(STDOUT, 0), (END, 8)]
    assert (response.app_status, response.protocol_status) == (0, REQUEST_COMPLETE)


def test_four_byte_name_value_lengths(connect: Connect) -> None:
    client = connect()
    long_name, long_value = b"HTTP_X_" + b"N" * 200, b"v" * 300
    pairs = (
        b"\x0b\x07REQUEST_URI/params"
        + long_length(len(long_name))
        + b"\x01"
        + long_name
        + b"1"  # 4-byte name, 1-byte value
        + b"\x04"
        + long_length(len(long_value))
        + b"HTTP"
        + long_value  # 1-byte name, 4-byte value
        + long_length(5)
        + long_length(2)
        + b"SHORTok"  # 4-byte lengths for short strings: legal
        + b"\x05\x00EMPTY"
    )
    client.send(
        begin_record(1)
        + encode_record(PARAMS, 1, pairs)
        + encode_record(PARAMS, 1)
        + encode_record(STDIN, 1)
    )
    assert echoed_params(client) == [
        ["REQUEST_URI", "/params"],
        [long_name.decode(), "1"],
        ["HTTP", long_value.decode()],
        ["SHORT", "ok"],
        ["EMPTY", ""],
    ]


@pytest.mark.parametrize("record_size", [65535, 1000, 7])
def test_params_over_64k_split_across_records(connect: Connect, record_size: int) -> None:
    client = connect()
    pairs = [(b"REQUEST_URI", b"/params"), (b"HTTP_BIG", bytes(range(32, 127)) * 1100)]
    pairs += [(b"HTTP_DUP", b"first"), (b"HTTP_DUP", b"second")]
    pairs += [(f"HTTP_P{i}".encode(), b"x" * (i % 300)) for i in range(400)]
    encoded = encode_params(pairs)
    assert len(encoded) > 65536 + 100_000 // 2  # several records; pairs straddle record ends
    client.send(
        begin_record(1) + records_of(1, PARAMS, encoded, record_size) + encode_record(STDIN, 1)
    )
    assert echoed_params(client) == [[k.decode(), v.decode()] for k, v in pairs]


def test_params_over_limit_refused_connection_lives(
    make_server: Callable[..., ServerThread], connect: Connect
) -> None:
    small = make_server(limits=Limits(max_params_bytes=4096))
    client = connect(small.addresses[0])
    response = client.request(params=uri("/params") | {"HTTP_HUGE": "h" * 10_000}, body=b"ignored")
    headers, _ = response.split()
    assert headers["status"].startswith("431")
    assert response.protocol_status == REQUEST_COMPLETE
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


def test_inactive_request_ids_ignored(connect: Connect) -> None:
    client = connect()
    client.send(encode_record(STDIN, 9, b"stray") + encode_record(PARAMS, 4, b"\x01\x01ab"))
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


# -- bodies and responses ------------------------------------------------------------------------


def test_ten_mib_body_in_many_stdin_records_echoed(connect: Connect) -> None:
    client = connect()
    body = hashlib.sha256(b"seed").digest() * (10 * MiB // 32)
    request = begin_record(1) + params_records(1, uri("/echo")) + records_of(1, STDIN, body, 8191)
    client.send(request)
    response = client.read_response(1)
    assert response.split()[1] == body
    assert response.protocol_status == REQUEST_COMPLETE

    client.send(
        begin_record(2) + params_records(2, uri("/sha256")) + records_of(2, STDIN, body, 30001)
    )
    expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    assert client.read_response(2).split()[1] == expected


def test_body_streamed_back_while_still_sending(connect: Connect) -> None:
    """Full duplex: the handler writes each chunk as it reads it; neither side's flow control
    may deadlock while the client is still sending."""
    client = connect()
    body = pattern(8 * MiB)
    head = begin_record(1) + params_records(
        1, uri("/echo-stream") | {"CONTENT_LENGTH": str(len(body))}
    )
    sender = threading.Thread(target=client.send, args=(head + stdin_records(1, body),))
    sender.start()
    try:
        received = bytearray()
        for rtype, content in client.stream(1):
            if rtype == STDOUT:
                received += content
    finally:
        sender.join(30)
    assert bytes(received).partition(b"\r\n\r\n")[2] == body


@pytest.mark.parametrize("query", ["n=300000&chunk=70000", "n=1000000", "n=65535", "n=65536"])
def test_large_response_records_and_bytes(connect: Connect, query: str) -> None:
    size = int(query.split("&")[0][2:])
    response = connect().request(params=uri(f"/big?{query}"))
    assert response.split()[1] == pattern(size)
    stdout_records = [length for rtype, length in response.records if rtype == STDOUT]
    assert max(stdout_records) <= 65535
    assert stdout_records[-1] == 0
    assert response.records[-1] == (END, 8)


def test_stderr_stream(connect: Connect) -> None:
    response = connect().request(params=uri("/stderr"))
    assert bytes(response.stderr) == b"a log line\n"
    assert response.split()[1] == b"ok"
    assert [r for r in response.records if r[0] == STDERR][-1] == (STDERR, 0)


def test_handler_error_gives_500_and_connection_lives(connect: Connect) -> None:
    client = connect()
    response = client.request(params=uri("/fail"))
    assert response.split()[0]["status"].startswith("500")
    assert response.protocol_status == REQUEST_COMPLETE
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


# -- connections ---------------------------------------------------------------------------------


def test_hundred_sequential_requests_on_one_keepalive_connection(
    server: ServerThread, connect: Connect
) -> None:
    client = connect()
    for i in range(100):
        body = f"request {i}".encode()
        response = client.request(request_id=1 + i % 3, params=uri("/echo"), body=body)
        assert response.split()[1] == body
    assert server.server.stats.accepted_connections == 1


def test_keep_conn_off_closes_after_end_request(connect: Connect) -> None:
    client = connect()
    response = client.request(params=uri("/hello"), keep_conn=False)
    assert response.protocol_status == REQUEST_COMPLETE
    assert client.at_eof()


def test_keep_conn_on_stays_open(connect: Connect) -> None:
    client = connect(timeout=0.3)
    client.request(params=uri("/hello"))
    with pytest.raises(TimeoutError):
        client.read_record()


def test_interleaved_multiplexed_requests(connect: Connect) -> None:
    client = connect()
    streams: dict[int, list[bytes]] = {}
    bodies = {rid: bytes([rid]) * (70_000 * rid) for rid in range(1, 6)}
    for rid, body in bodies.items():
        path = "/echo" if rid != 3 else "/big?n=500000&chunk=10000"
        chunks = [begin_record(rid), params_records(rid, uri(path))]
        chunks += [
            encode_record(STDIN, rid, body[i : i + 20_000]) for i in range(0, len(body), 20_000)
        ]
        chunks.append(encode_record(STDIN, rid))
        streams[rid] = chunks
    interleaved = []
    while any(streams.values()):
        for rid in sorted(streams, reverse=True):
            if streams[rid]:
                interleaved.append(streams[rid].pop(0))
    client.send(b"".join(interleaved))
    for rid in (5, 1, 3, 2, 4):
        response = client.read_response(rid)
        expected = pattern(500_000) if rid == 3 else bodies[rid]
        assert response.split()[1] == expected, rid


def test_get_values_idle_and_mid_request(
    make_server: Callable[..., ServerThread], connect: Connect
) -> None:
    served = make_server(max_connections=77)
    client = connect(served.addresses[0])
    names = [b"FCGI_MAX_CONNS", b"FCGI_NOT_A_NAME", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
    expected = [
        (b"FCGI_MAX_CONNS", b"77"),
        (b"FCGI_MAX_REQS", str(77 * Limits().max_requests_per_connection).encode()),
        (b"FCGI_MPXS_CONNS", b"1"),
    ]
    assert client.get_values(names) == expected
    client.send(request_bytes(1, uri("/wait-abort")))
    record = client.read_record()
    assert record is not None and record[0] == STDOUT  # the request is in flight
    assert client.get_values(names) == expected
    client.send(encode_record(ABORT, 1))
    assert client.read_response(1).protocol_status == REQUEST_COMPLETE


def test_no_multiplexing_refuses_second_request(
    make_server: Callable[..., ServerThread], connect: Connect
) -> None:
    served = make_server(limits=Limits(multiplex=False), max_connections=3)
    client = connect(served.addresses[0])
    assert client.get_values([b"FCGI_MPXS_CONNS", b"FCGI_MAX_REQS"]) == [
        (b"FCGI_MPXS_CONNS", b"0"),
        (b"FCGI_MAX_REQS", b"3"),
    ]
    client.send(request_bytes(1, uri("/hold?key=mpx")))
    client.send(request_bytes(2, uri("/hello")))
    refused = client.read_response(2)
    assert (refused.protocol_status, refused.stdout) == (CANT_MPX_CONN, bytearray())
    assert connect(served.addresses[0]).request(params=uri("/release?key=mpx")).done
    assert client.read_response(1).split()[1] == b"released mpx"


def test_unknown_management_type(connect: Connect) -> None:
    client = connect()
    client.send(encode_record(42, 0, b"whatever"))
    assert client.read_management() == (UNKNOWN_TYPE, bytes([42, 0, 0, 0, 0, 0, 0, 0]))
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


@pytest.mark.parametrize("keep_conn", [True, False])
def test_unknown_role(connect: Connect, keep_conn: bool) -> None:
    client = connect()
    client.send(begin_record(1, role=7, keep_conn=keep_conn))
    refused = client.read_response(1)
    assert (refused.protocol_status, refused.records) == (UNKNOWN_ROLE, [(END, 8)])
    if not keep_conn:
        assert client.at_eof()
        return
    # The PARAMS and STDIN that follow for the refused id are ignored; the id can be reused.
    client.send(params_records(1, uri("/hello")) + encode_record(STDIN, 1))
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


def test_filter_role_reads_stdin_and_data(connect: Connect) -> None:
    client = connect()
    data = b"file contents " * 10_000
    client.send(
        begin_record(1, role=FILTER)
        + params_records(1, uri("/filter") | {"FCGI_DATA_LENGTH": str(len(data))})
        + stdin_records(1, b"x" * 1000)
        + records_of(1, DATA, data, 9000)
    )
    _, body = client.read_response(1).split()
    assert body == b"stdin=1000 data=" + data.upper()


def test_authorizer_role(connect: Connect) -> None:
    client = connect()
    client.send(begin_record(1, role=AUTHORIZER) + params_records(1, uri("/params")))
    _, body = client.read_response(1).split()
    assert json.loads(body)["role"] == AUTHORIZER
    # Some front ends send an empty STDIN to an authorizer anyway: tolerated.
    client.send(request_bytes(2, uri("/params"), role=AUTHORIZER) + encode_record(STDIN, 2))
    assert json.loads(client.read_response(2).split()[1])["role"] == AUTHORIZER
    assert client.request(params=uri("/hello")).done


# -- abort ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_conn", [True, False])
def test_abort_mid_request(connect: Connect, keep_conn: bool) -> None:
    client = connect()
    client.send(request_bytes(1, uri("/wait-abort"), keep_conn=keep_conn))
    assert client.read_record() == (STDOUT, 1, b"Content-Type: text/plain\r\n\r\nwaiting\n")
    started = time.monotonic()
    client.send(encode_record(ABORT, 1) + encode_record(STDIN, 1, b"ignored after abort"))
    response = client.read_response(1)
    assert time.monotonic() - started < 2
    assert response.protocol_status == REQUEST_COMPLETE
    assert response.records[-1] == (END, 8)
    assert handlers.EVENTS == ["aborted 1"]  # the handler was cancelled
    if keep_conn:
        assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"
    else:
        assert client.at_eof()


@pytest.mark.parametrize("when", ["in the same packet", "before params end", "mid-body"])
def test_abort_at_any_point_is_answered(connect: Connect, when: str) -> None:
    client = connect()
    if when == "in the same packet":
        client.send(request_bytes(1, uri("/wait-abort")) + encode_record(ABORT, 1))
    elif when == "before params end":
        client.send(begin_record(1) + encode_record(PARAMS, 1, b"\x0b\x05REQUEST_URI/echo"))
        client.send(encode_record(ABORT, 1))
    else:
        client.send(
            begin_record(1) + params_records(1, uri("/echo")) + encode_record(STDIN, 1, b"x")
        )
        client.send(encode_record(ABORT, 1))
    response = client.read_response(1)
    assert response.protocol_status == REQUEST_COMPLETE
    assert client.request(params=uri("/hello")).split()[1] == b"Hello World!"


def test_abort_reaches_a_handler_waiting_for_body(server: ServerThread, connect: Connect) -> None:
    client = connect()
    client.send(
        begin_record(1) + params_records(1, uri("/sha256")) + encode_record(STDIN, 1, b"abc")
    )
    wait_until(lambda: server.server.stats.requests_started == 1, what="request started")
    client.send(encode_record(ABORT, 1))
    assert client.read_response(1).protocol_status == REQUEST_COMPLETE
    wait_until(lambda: server.server.stats.requests_finished == 1, what="handler finished")


def test_close_after_last_response_lingers_for_unread_input(connect: Connect) -> None:
    """Without FCGI_KEEP_CONN the server closes after END_REQUEST, but a peer may still be
    sending a body the handler never read: the server half-closes and takes it, so the peer
    sees a clean end of stream, never a reset or a broken pipe."""
    client = connect()
    client.send(
        begin_record(1, keep_conn=False)
        + params_records(1, uri("/hello"))
        + encode_record(STDIN, 1, b"a" * 1000)
    )
    assert client.read_response(1).split()[1] == b"Hello World!"
    for _ in range(20):  # the rest of the body, after the response has come back
        client.send(encode_record(STDIN, 1, b"b" * 60_000))
    client.send(encode_record(STDIN, 1))
    client.sock.shutdown(socket.SHUT_WR)
    assert client.read_record() is None  # a clean EOF


def test_lingering_close_gives_up_on_a_peer_that_never_closes(
    server: ServerThread, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("smisk.server.protocol.LINGER_TIMEOUT", 0.2)
    client = connect()
    assert client.request(params=uri("/hello"), keep_conn=False).done
    assert client.at_eof()  # half-closed by the server; the client keeps its side open
    wait_until(lambda: not server.server.connections, timeout=5, what="connection dropped")
