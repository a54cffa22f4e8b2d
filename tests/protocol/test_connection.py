"""FastCGIConnection: roles, keep-alive, multiplexing, management records, aborts, limits, output."""

from __future__ import annotations

import pytest

from smisk.codec import decode_params, encode_params
from smisk.protocol import (
    Data,
    DataEnd,
    FastCGIConnection,
    Limits,
    LocalProtocolError,
    ProtocolStatus,
    RecordType,
    RemoteProtocolError,
    RequestAborted,
    RequestReceived,
    RequestRefused,
    Role,
    Stdin,
    StdinEnd,
    encode_record,
)

from .helpers import (
    SAMPLE_PARAMS,
    Record,
    abort,
    begin,
    begin_body,
    connection_three_ways,
    data,
    end_body,
    end_record,
    get_values,
    params,
    parse_records,
    record,
    remote_error_three_ways,
    request,
    stdin,
    stream_content,
    unknown_type_record,
)

STDOUT, STDERR, END = RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST


def received(
    request_id: int = 1, role: Role = Role.RESPONDER, keep_conn: bool = False
) -> RequestReceived:
    return RequestReceived(request_id, role, keep_conn, SAMPLE_PARAMS)


def output(conn: FastCGIConnection) -> list[Record]:
    return parse_records(conn.data_to_send())


def ended(request_id: int, app_status: int = 0) -> list[Record]:
    """What end_request queues for a request that wrote no STDERR."""
    return [(STDOUT, request_id, b""), end_record(request_id, app_status)]


# -- roles --------------------------------------------------------------------------------------


def test_responder_with_body() -> None:
    raw = begin(1) + params(1, SAMPLE_PARAMS) + stdin(1, b"hello", end=False) + stdin(1, b" you")
    events, out = connection_three_ways(raw)
    assert events == [received(1), Stdin(1, b"hello"), Stdin(1, b" you"), StdinEnd(1)]
    assert out == []


def test_responder_body_over_one_record() -> None:
    body = bytes(range(256)) * 1000
    events, _ = connection_three_ways(request(3, body=body, keep_conn=True))
    assert events[0] == received(3, keep_conn=True)
    assert events[-1] == StdinEnd(3)
    chunks = events[1:-1]
    assert all(isinstance(e, Stdin) and e.request_id == 3 for e in chunks)
    assert b"".join(e.data for e in chunks) == body  # type: ignore[union-attr]


def test_authorizer_has_no_body() -> None:
    events, out = connection_three_ways(begin(1, Role.AUTHORIZER) + params(1, SAMPLE_PARAMS))
    assert events == [received(1, Role.AUTHORIZER), StdinEnd(1)]
    assert out == []


def test_authorizer_tolerates_an_empty_stdin() -> None:
    events, out = connection_three_ways(request(1, Role.AUTHORIZER) + stdin(1))
    assert events == [received(1, Role.AUTHORIZER), StdinEnd(1)]
    assert out == []


def test_filter_reads_stdin_then_data() -> None:
    raw = begin(4, Role.FILTER) + params(4, SAMPLE_PARAMS) + stdin(4, b"in")
    raw += data(4, b"file-", end=False) + data(4, b"contents")
    events, out = connection_three_ways(raw)
    assert events == [
        received(4, Role.FILTER),
        Stdin(4, b"in"),
        StdinEnd(4),
        Data(4, b"file-"),
        Data(4, b"contents"),
        DataEnd(4),
    ]
    assert out == []


@pytest.mark.parametrize("role", [0, 4, 42, 0xFFFF])
def test_unknown_role_refused_at_once(role: int) -> None:
    events, out = connection_three_ways(begin(7, role, keep_conn=True))
    assert events == []
    assert out == [end_record(7, 0, ProtocolStatus.UNKNOWN_ROLE)]


def test_unknown_role_then_records_ignored_and_id_reusable() -> None:
    raw = begin(7, 9, keep_conn=True) + params(7, SAMPLE_PARAMS) + stdin(7, b"x") + abort(7)
    raw += request(7, body=b"ok", keep_conn=True)
    events, out = connection_three_ways(raw)
    assert out == [end_record(7, 0, ProtocolStatus.UNKNOWN_ROLE)]
    assert events == [received(7, keep_conn=True), Stdin(7, b"ok"), StdinEnd(7)]


@pytest.mark.parametrize("keep_conn", [False, True])
def test_unknown_role_and_keep_conn(keep_conn: bool) -> None:
    conn = FastCGIConnection()
    conn.receive_data(begin(1, 77, keep_conn=keep_conn))
    assert not conn.is_active(1)
    assert conn.should_close is not keep_conn


# -- FCGI_KEEP_CONN -----------------------------------------------------------------------------


@pytest.mark.parametrize("keep_conn", [False, True])
def test_should_close_follows_keep_conn(keep_conn: bool) -> None:
    conn = FastCGIConnection()
    assert not conn.should_close
    conn.receive_data(request(1, keep_conn=keep_conn))
    assert not conn.should_close
    conn.send_stdout(1, b"Status: 200 OK\r\n\r\n")
    assert not conn.should_close
    conn.end_request(1)
    assert conn.should_close is not keep_conn


def test_should_close_waits_for_other_requests() -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(1, keep_conn=False) + request(2, keep_conn=True))
    conn.end_request(1)
    assert not conn.should_close  # request 2 still runs
    conn.end_request(2)
    assert conn.should_close


def test_many_sequential_requests_on_one_kept_connection() -> None:
    conn = FastCGIConnection()
    for n in range(100):
        events = conn.receive_data(request(1, body=b"%d" % n, keep_conn=True))
        assert events == [received(1, keep_conn=True), Stdin(1, b"%d" % n), StdinEnd(1)]
        conn.send_stdout(1, b"reply %d" % n)
        conn.end_request(1)
        assert not conn.should_close
        assert output(conn) == [(STDOUT, 1, b"reply %d" % n), *ended(1)]
    assert conn.active_requests == frozenset()


# -- multiplexing -------------------------------------------------------------------------------


def _records_of(raw: bytes) -> list[bytes]:
    records, pos = [], 0
    while pos < len(raw):
        size = 8 + int.from_bytes(raw[pos + 4 : pos + 6], "big") + raw[pos + 6]
        records.append(raw[pos : pos + size])
        pos += size
    return records


def _interleave(*streams: list[bytes]) -> bytes:
    """Round-robin over each request's records: per-id order kept, ids mixed."""
    queues = [list(s) for s in streams]
    out = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return b"".join(out)


IDS = (1, 2, 65535)


def test_interleaved_requests() -> None:
    streams = [
        _records_of(request(1, body=b"one", keep_conn=True)),
        _records_of(request(2, Role.AUTHORIZER, keep_conn=True)),
        _records_of(begin(65535, Role.FILTER, True) + params(65535, SAMPLE_PARAMS))
        + _records_of(stdin(65535, b"s", end=False) + stdin(65535) + data(65535, b"d")),
    ]
    events, out = connection_three_ways(_interleave(*streams))
    assert out == []
    by_id = {i: [e for e in events if e.request_id == i] for i in IDS}
    assert by_id[1] == [received(1, keep_conn=True), Stdin(1, b"one"), StdinEnd(1)]
    assert by_id[2] == [received(2, Role.AUTHORIZER, True), StdinEnd(2)]
    assert by_id[65535] == [
        received(65535, Role.FILTER, True),
        Stdin(65535, b"s"),
        StdinEnd(65535),
        Data(65535, b"d"),
        DataEnd(65535),
    ]


def test_interleaved_output_is_tagged_with_its_id() -> None:
    conn = FastCGIConnection()
    conn.receive_data(b"".join(request(i, keep_conn=True) for i in IDS))
    assert conn.active_requests == frozenset(IDS)
    for n in range(3):
        for i in IDS:
            conn.send_stdout(i, b"%d:%d;" % (i, n))
    conn.send_stderr(2, b"warning")
    conn.end_request(2, 2)
    conn.end_request(65535, 3)
    conn.end_request(1, 1)
    records = output(conn)
    for i in IDS:
        assert stream_content(records, STDOUT, i) == b"".join(b"%d:%d;" % (i, n) for n in range(3))
    assert stream_content(records, STDERR, 2) == b"warning"
    ends = [(i, c) for t, i, c in records if t == END]
    assert ends == [(2, end_body(2)), (65535, end_body(3)), (1, end_body(1))]
    assert conn.active_requests == frozenset()
    assert not conn.should_close


def test_no_multiplexing_refuses_a_second_id() -> None:
    raw = begin(1, keep_conn=True) + params(1, SAMPLE_PARAMS)
    raw += begin(2, keep_conn=True) + params(2, SAMPLE_PARAMS) + stdin(2) + stdin(1, b"late")
    events, out = connection_three_ways(raw, Limits(multiplex=False))
    assert out == [end_record(2, 0, ProtocolStatus.CANT_MPX_CONN)]
    assert events == [received(1, keep_conn=True), Stdin(1, b"late"), StdinEnd(1)]


def test_no_multiplexing_accepts_next_id_after_end() -> None:
    conn = FastCGIConnection(Limits(multiplex=False))
    conn.receive_data(request(1, keep_conn=True))
    conn.end_request(1)
    assert conn.receive_data(request(2, keep_conn=True))[0] == received(2, keep_conn=True)
    assert output(conn) == ended(1)


def test_too_many_requests_is_overloaded() -> None:
    conn = FastCGIConnection(Limits(max_requests_per_connection=2))
    events = conn.receive_data(begin(1, keep_conn=True) + begin(2, keep_conn=True))
    events += conn.receive_data(begin(3, keep_conn=True) + params(3, SAMPLE_PARAMS))
    assert events == []
    assert output(conn) == [end_record(3, 0, ProtocolStatus.OVERLOADED)]
    assert conn.active_requests == {1, 2}
    conn.receive_data(params(1) + stdin(1))
    conn.end_request(1)
    output(conn)
    assert conn.receive_data(begin(3) + params(3, SAMPLE_PARAMS)) == [received(3)]


# -- management records -------------------------------------------------------------------------

ALL_VALUES = (b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS")


def _values_answer(out: list[Record]) -> list[tuple[bytes, bytes]]:
    assert [(t, i) for t, i, _ in out] == [(RecordType.GET_VALUES_RESULT, 0)]
    return decode_params(out[0][2])


@pytest.mark.parametrize(
    ("limits", "max_conns", "expected"),
    [
        (Limits(max_requests_per_connection=4), 10, (b"10", b"40", b"1")),
        (Limits(multiplex=False), 3, (b"3", b"3", b"0")),
        (Limits(), 1, (b"1", b"128", b"1")),
    ],
)
def test_get_values_as_first_record(
    limits: Limits, max_conns: int, expected: tuple[bytes, bytes, bytes]
) -> None:
    events, out = connection_three_ways(get_values(*ALL_VALUES), limits, max_conns)
    assert events == []
    assert _values_answer(out) == list(zip(ALL_VALUES, expected, strict=True))


def test_get_values_answers_known_names_in_asked_order() -> None:
    asked = (b"FCGI_MPXS_CONNS", b"FCGI_NOPE", b"fcgi_max_conns", b"FCGI_MAX_CONNS", b"")
    _, out = connection_three_ways(get_values(*asked), max_conns=5)
    assert _values_answer(out) == [(b"FCGI_MPXS_CONNS", b"1"), (b"FCGI_MAX_CONNS", b"5")]


def test_get_values_for_unknown_names_only_is_an_empty_answer() -> None:
    _, out = connection_three_ways(get_values(b"FCGI_SOMETHING") + get_values())
    assert out == [(RecordType.GET_VALUES_RESULT, 0, b"")] * 2


def test_get_values_ignores_values_sent() -> None:
    ask = encode_record(RecordType.GET_VALUES, 0, encode_params([(b"FCGI_MPXS_CONNS", b"9")]))
    _, out = connection_three_ways(ask, Limits(multiplex=False))
    assert _values_answer(out) == [(b"FCGI_MPXS_CONNS", b"0")]


def test_get_values_mid_request() -> None:
    raw = begin(1) + params(1, SAMPLE_PARAMS) + stdin(1, b"a", end=False)
    raw += get_values(b"FCGI_MAX_REQS") + stdin(1, b"b", end=False) + stdin(1)
    events, out = connection_three_ways(raw, Limits(max_requests_per_connection=3), max_conns=2)
    assert events == [received(1), Stdin(1, b"a"), Stdin(1, b"b"), StdinEnd(1)]
    assert _values_answer(out) == [(b"FCGI_MAX_REQS", b"6")]


def test_get_values_answer_queued_between_request_output() -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(1))
    conn.send_stdout(1, b"body")
    conn.receive_data(get_values(b"FCGI_MPXS_CONNS"))
    conn.end_request(1)
    types = [t for t, _, _ in output(conn)]
    assert types == [STDOUT, RecordType.GET_VALUES_RESULT, STDOUT, END]


def test_malformed_get_values_is_a_remote_error() -> None:
    remote_error_three_ways(encode_record(RecordType.GET_VALUES, 0, b"\x0f\x00FCGI"))


@pytest.mark.parametrize("record_type", [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 42, 255])
@pytest.mark.parametrize("content", [b"", b"whatever"])
def test_unknown_management_type(record_type: int, content: bytes) -> None:
    events, out = connection_three_ways(encode_record(record_type, 0, content))
    assert events == []
    assert out == [unknown_type_record(record_type)]


def test_unknown_management_type_mid_request() -> None:
    raw = begin(1) + encode_record(42, 0) + params(1, SAMPLE_PARAMS) + stdin(1)
    events, out = connection_three_ways(raw)
    assert events == [received(1), StdinEnd(1)]
    assert out == [unknown_type_record(42)]


# -- inactive ids and BEGIN_REQUEST errors ------------------------------------------------------

INACTIVE_RECORDS = [
    params(9, SAMPLE_PARAMS),
    stdin(9, b"x"),
    data(9, b"x"),
    abort(9),
    encode_record(RecordType.STDOUT, 9, b"x"),
    encode_record(RecordType.END_REQUEST, 9, bytes(8)),
    encode_record(RecordType.GET_VALUES, 9, b"\x00\x00"),
    encode_record(42, 9, b"x"),
]


@pytest.mark.parametrize("raw", INACTIVE_RECORDS)
def test_records_for_never_begun_id_ignored(raw: bytes) -> None:
    events, out = connection_three_ways(raw + request(1))
    assert events == [received(1), StdinEnd(1)]
    assert out == []


@pytest.mark.parametrize("raw", INACTIVE_RECORDS)
def test_records_for_ended_id_ignored(raw: bytes) -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(9, keep_conn=True))
    conn.end_request(9)
    output(conn)
    assert conn.receive_data(raw) == []
    assert conn.data_to_send() == b""
    assert not conn.is_active(9)


@pytest.mark.parametrize(
    "prefix",
    [
        begin(1),
        begin(1) + params(1, SAMPLE_PARAMS),
        request(1),
        request(1, Role.AUTHORIZER),
        begin(1) + abort(1),
        begin(1, Role.FILTER) + params(1) + stdin(1),
    ],
)
def test_begin_for_active_id_is_a_remote_error(prefix: bytes) -> None:
    remote_error_three_ways(prefix + begin(1))


@pytest.mark.parametrize("size", [0, 1, 7, 9, 16])
def test_begin_body_not_eight_bytes_is_a_remote_error(size: int) -> None:
    body = (begin_body(Role.RESPONDER, 1) + bytes(16))[:size]
    remote_error_three_ways(encode_record(RecordType.BEGIN_REQUEST, 1, body))


def test_begin_ignores_reserved_bytes_and_other_flag_bits() -> None:
    body = b"\x00\x01\xff" + b"\xee" * 5
    raw = record(RecordType.BEGIN_REQUEST, 1, body) + params(1) + stdin(1)
    events, _ = connection_three_ways(raw)
    assert events == [RequestReceived(1, Role.RESPONDER, True, []), StdinEnd(1)]


@pytest.mark.parametrize("version", [0, 2])
def test_wrong_version_is_a_remote_error(version: int) -> None:
    bad = bytes((version,)) + get_values(b"FCGI_MAX_CONNS")[1:]
    remote_error_three_ways(bad)
    remote_error_three_ways(request(1) + bad)


def test_events_before_the_error_are_not_lost_when_fed_separately() -> None:
    conn = FastCGIConnection()
    assert conn.receive_data(request(1)) == [received(1), StdinEnd(1)]
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(begin(1))
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"")
    conn.send_stdout(1, b"the layer above may still answer")  # local side is unaffected


# -- ABORT_REQUEST ------------------------------------------------------------------------------

ABORT_POINTS = {
    "responder params": (Role.RESPONDER, begin(1, keep_conn=True) + params(1, end=False)),
    "responder mid params": (
        Role.RESPONDER,
        begin(1, keep_conn=True) + params(1, SAMPLE_PARAMS, end=False),
    ),
    "responder stdin": (
        Role.RESPONDER,
        begin(1, keep_conn=True) + params(1, SAMPLE_PARAMS) + stdin(1, b"x", end=False),
    ),
    "responder input done": (Role.RESPONDER, request(1, keep_conn=True)),
    "authorizer params": (Role.AUTHORIZER, begin(1, Role.AUTHORIZER, keep_conn=True)),
    "authorizer input done": (Role.AUTHORIZER, request(1, Role.AUTHORIZER, keep_conn=True)),
    "filter stdin": (Role.FILTER, begin(1, Role.FILTER, True) + params(1, SAMPLE_PARAMS)),
    "filter data": (
        Role.FILTER,
        begin(1, Role.FILTER, True) + params(1, SAMPLE_PARAMS) + stdin(1) + data(1, b"d", False),
    ),
    "filter input done": (Role.FILTER, request(1, Role.FILTER, keep_conn=True)),
}


@pytest.mark.parametrize("point", ABORT_POINTS)
def test_abort_in_every_input_state(point: str) -> None:
    _, prefix = ABORT_POINTS[point]
    before, _ = connection_three_ways(prefix)
    events, out = connection_three_ways(prefix + abort(1))
    assert events == [*before, RequestAborted(1)]
    assert out == []


@pytest.mark.parametrize("point", ABORT_POINTS)
def test_after_abort_input_ignored_and_end_request_works(point: str) -> None:
    _, prefix = ABORT_POINTS[point]
    conn = FastCGIConnection()
    conn.receive_data(prefix + abort(1))
    later = params(1, SAMPLE_PARAMS) + stdin(1, b"more") + data(1, b"more") + abort(1)
    assert conn.receive_data(later) == []
    assert conn.is_active(1)
    conn.send_stdout(1, b"Status: 499\r\n\r\n")
    conn.end_request(1, 499)
    assert output(conn) == [(STDOUT, 1, b"Status: 499\r\n\r\n"), *ended(1, 499)]
    assert not conn.should_close
    assert conn.receive_data(request(1))[0] == received(1)  # the id begins again


def test_abort_of_refused_request() -> None:
    conn = FastCGIConnection(Limits(max_params_bytes=10))
    events = conn.receive_data(begin(1) + params(1, [(b"NAME", b"a long value")], end=False))
    assert [type(e) for e in events] == [RequestRefused]
    assert conn.receive_data(abort(1)) == [RequestAborted(1)]
    assert conn.receive_data(abort(1)) == []


# -- limits -------------------------------------------------------------------------------------

BIG = [(b"HTTP_X", b"v" * 100)]  # encodes to 108 bytes


def test_params_bytes_over_limit_refused_others_unaffected() -> None:
    raw = begin(1, keep_conn=True) + begin(2, keep_conn=True)
    raw += params(1, BIG, end=False) + params(2, SAMPLE_PARAMS, end=False)
    raw += params(1, SAMPLE_PARAMS) + params(2) + stdin(1, b"dropped") + stdin(2, b"kept")
    events, out = connection_three_ways(raw, Limits(max_params_bytes=100))
    assert out == []
    refused = [e for e in events if e.request_id == 1]
    assert len(refused) == 1 and isinstance(refused[0], RequestRefused)
    assert refused[0].status == 431 and refused[0].reason
    assert [e for e in events if e.request_id == 2] == [
        received(2, keep_conn=True),
        Stdin(2, b"kept"),
        StdinEnd(2),
    ]


def test_params_bytes_limit_counts_across_records() -> None:
    half = params(1, [(b"A", b"x" * 57)], end=False)  # 60 bytes of content each
    limits = Limits(max_params_bytes=120)
    events, _ = connection_three_ways(begin(1) + half + half + params(1), limits)
    assert [type(e) for e in events] == [RequestReceived]
    events, _ = connection_three_ways(begin(1) + half + half + half + params(1), limits)
    assert [type(e) for e in events] == [RequestRefused]


def test_params_bytes_exactly_at_limit_accepted() -> None:
    events, _ = connection_three_ways(request(1, pairs=BIG), Limits(max_params_bytes=108))
    assert events == [RequestReceived(1, Role.RESPONDER, False, BIG), StdinEnd(1)]


@pytest.mark.parametrize("role", list(Role))
def test_params_count_over_limit_refused(role: Role) -> None:
    raw = request(1, role, keep_conn=True) + request(2, role, pairs=SAMPLE_PARAMS[:2])
    events, out = connection_three_ways(raw, Limits(max_params_count=2))
    assert out == []
    assert [type(e) for e in events if e.request_id == 1] == [RequestRefused]
    assert events[0] == RequestRefused(1, 431, events[0].reason)  # type: ignore[union-attr]
    assert isinstance(events[1], RequestReceived) and events[1].request_id == 2


def test_refused_request_is_answered_by_the_layer_above() -> None:
    conn = FastCGIConnection(Limits(max_params_count=1))
    assert [type(e) for e in conn.receive_data(request(1, keep_conn=True))] == [RequestRefused]
    assert conn.is_active(1)
    conn.send_stdout(1, b"Status: 431\r\n\r\n")
    conn.end_request(1)
    assert output(conn) == [(STDOUT, 1, b"Status: 431\r\n\r\n"), *ended(1)]
    assert not conn.should_close


# -- output and local errors --------------------------------------------------------------------


def _ended_conn() -> FastCGIConnection:
    conn = FastCGIConnection()
    conn.receive_data(request(1, keep_conn=True) + begin(2, 99, keep_conn=True))
    conn.end_request(1)
    return conn


SENDS = {
    "stdout": lambda conn, i: conn.send_stdout(i, b"x"),
    "empty stdout": lambda conn, i: conn.send_stdout(i, b""),
    "stderr": lambda conn, i: conn.send_stderr(i, b"x"),
    "end": lambda conn, i: conn.end_request(i),
}


@pytest.mark.parametrize("send", SENDS)
@pytest.mark.parametrize("request_id", [0, 1, 2, 3])  # management, ended, refused role, never
def test_output_for_inactive_id_is_a_local_error(send: str, request_id: int) -> None:
    conn = _ended_conn()
    before = conn.data_to_send()
    with pytest.raises(LocalProtocolError):
        SENDS[send](conn, request_id)
    assert conn.data_to_send() == b""
    assert before  # the earlier output was not disturbed
    assert conn.receive_data(get_values()) == []  # a local error does not break the connection


def test_end_request_without_stderr() -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(1))
    conn.send_stdout(1, b"out")
    conn.end_request(1, 0)
    assert output(conn) == [(STDOUT, 1, b"out"), (STDOUT, 1, b""), end_record(1)]
    assert not conn.is_active(1)


def test_end_request_closes_stderr_when_written() -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(1))
    conn.send_stderr(1, b"err")
    conn.send_stdout(1, b"out")
    conn.send_stderr(1, b"or")
    conn.end_request(1, 3)
    assert output(conn) == [
        (STDERR, 1, b"err"),
        (STDOUT, 1, b"out"),
        (STDERR, 1, b"or"),
        (STDOUT, 1, b""),
        (STDERR, 1, b""),
        end_record(1, 3),
    ]


def test_empty_writes_queue_nothing() -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(1))
    conn.send_stdout(1, b"")
    conn.send_stderr(1, b"")
    assert conn.data_to_send() == b""
    conn.end_request(1)
    assert output(conn) == ended(1)  # an empty stderr write does not count as written


@pytest.mark.parametrize(
    ("app_status", "protocol_status"),
    [
        (0, ProtocolStatus.REQUEST_COMPLETE),
        (1, ProtocolStatus.REQUEST_COMPLETE),
        (0xFFFFFFFF, ProtocolStatus.OVERLOADED),
        (0x01020304, ProtocolStatus.CANT_MPX_CONN),
    ],
)
def test_end_request_statuses(app_status: int, protocol_status: ProtocolStatus) -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(300))
    conn.end_request(300, app_status, protocol_status)
    assert output(conn)[-1] == end_record(300, app_status, protocol_status)


@pytest.mark.parametrize("length", [1, 65535, 65536, 200000])
def test_large_stdout_split_and_byte_exact(length: int) -> None:
    payload = bytes(i * 31 % 256 for i in range(length))
    conn = FastCGIConnection()
    conn.receive_data(request(2))
    conn.send_stdout(2, payload)
    conn.end_request(2)
    records = output(conn)
    assert stream_content(records, STDOUT, 2) == payload
    assert [c for t, _, c in records if t == STDOUT][-1] == b""
    assert records[-1] == end_record(2)


def test_data_to_send_drains() -> None:
    conn = FastCGIConnection()
    assert conn.data_to_send() == b""
    conn.receive_data(get_values() + get_values())
    assert len(conn.data_to_send()) == 16
    assert conn.data_to_send() == b""


@pytest.mark.parametrize("stderr", [False, True])
def test_a_small_response_ends_in_one_buffer(stderr: bool) -> None:
    conn = FastCGIConnection()
    conn.receive_data(request(4))
    if stderr:
        conn.send_stderr(4, b"warn")
        conn.buffers_to_send()
    conn.end_request(4, 0, data=b"Status: 200 OK\r\n\r\nhello")
    buffers = conn.buffers_to_send()
    assert len(buffers) == 1  # one write for the transport, nothing joined on the way
    closing = [(STDERR, 4, b"")] if stderr else []
    assert parse_records(bytes(buffers[0])) == [
        (STDOUT, 4, b"Status: 200 OK\r\n\r\nhello"),
        (STDOUT, 4, b""),
        *closing,
        end_record(4),
    ]


@pytest.mark.parametrize("length", [32 * 1024, 200000])
def test_a_large_final_write_is_not_copied(length: int) -> None:
    payload = bytes(length)
    conn = FastCGIConnection()
    conn.receive_data(request(5))
    conn.end_request(5, 0, data=payload)
    buffers = conn.buffers_to_send()
    assert any(isinstance(b, memoryview) and b.obj is payload for b in buffers)
    records = parse_records(b"".join(buffers))
    assert stream_content(records, STDOUT, 5) == payload
    assert records[-2:] == [(STDOUT, 5, b""), end_record(5)]
