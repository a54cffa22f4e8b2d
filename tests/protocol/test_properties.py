"""Property tests: codec round-trips, framing under any chunking, and a connection that only ever
raises ProtocolError, whatever the peer sends."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smisk.codec import decode_params, encode_params
from smisk.protocol import (
    Data,
    DataEnd,
    Event,
    FastCGIConnection,
    ProtocolError,
    RecordReader,
    RecordType,
    RequestReceived,
    Role,
    Stdin,
    StdinEnd,
    encode_record,
    encode_stream,
)

from .helpers import begin, get_values, parse_records

pairs_strategy = st.lists(
    st.tuples(st.binary(max_size=300), st.binary(max_size=300)),
    max_size=8,
)


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    return [raw[a:b] for a, b in pairwise(edges)]


# -- codec --------------------------------------------------------------------------------------


@given(pairs_strategy)
def test_params_round_trip(pairs: list[tuple[bytes, bytes]]) -> None:
    assert decode_params(encode_params(pairs)) == pairs


@given(pairs_strategy, pairs_strategy)
def test_params_streams_concatenate(
    a: list[tuple[bytes, bytes]], b: list[tuple[bytes, bytes]]
) -> None:
    assert decode_params(encode_params(a) + encode_params(b)) == a + b


@given(st.binary(max_size=600))
def test_decode_params_never_over_reads(raw: bytes) -> None:
    try:
        pairs = decode_params(raw)
    except ValueError:
        return
    # Every byte decoded came from the input: names and values never exceed what was given.
    assert sum(len(n) + len(v) for n, v in pairs) <= len(raw)
    assert all(type(n) is bytes and type(v) is bytes for n, v in pairs)


@given(pairs_strategy.filter(bool), st.data())
def test_truncated_params_raise(pairs: list[tuple[bytes, bytes]], data: st.DataObject) -> None:
    raw = encode_params(pairs)
    last = len(encode_params(pairs[:-1]))  # where the last pair starts; it is >= 2 bytes long
    cut = data.draw(st.integers(last + 1, len(raw) - 1))
    with pytest.raises(ValueError):
        decode_params(raw[:cut])


# -- framing ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 200_000),
    st.integers(1, 65535),
    st.lists(st.integers(0, 250_000), max_size=30),
)
def test_encode_stream_then_read_in_any_chunks(size: int, request_id: int, cuts: list[int]) -> None:
    payload = bytes(i * 13 % 256 for i in range(size))
    raw = encode_stream(RecordType.STDOUT, request_id, payload) if payload else b""
    reader = RecordReader()
    records = []
    for chunk in _split(raw, cuts):
        records += reader.feed(chunk)
    assert reader.buffered == 0
    assert all(t == RecordType.STDOUT and i == request_id for t, i, _ in records)
    assert all(len(c) <= 65535 for _, _, c in records)
    assert b"".join(c for _, _, c in records) == payload


@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 65535), st.binary(max_size=40)),
        max_size=10,
    ),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_encode_record_then_read_in_any_chunks(
    records: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    raw = b"".join(encode_record(*r) for r in records)
    reader = RecordReader()
    got = []
    for chunk in _split(raw, cuts):
        got += reader.feed(chunk)
    assert got == records
    assert reader.buffered == 0


# -- a valid, multiplexed request stream --------------------------------------------------------


@dataclass
class Plan:
    request_id: int
    role: Role
    keep_conn: bool
    params: list[tuple[bytes, bytes]]
    stdin: list[bytes]
    data: list[bytes]

    def records(self) -> list[bytes]:
        i = self.request_id
        raw = encode_params(self.params)
        out = [begin(i, self.role, self.keep_conn)]
        out += [
            encode_record(RecordType.PARAMS, i, raw[a : a + 50]) for a in range(0, len(raw), 50)
        ]
        out.append(encode_record(RecordType.PARAMS, i))
        if self.role != Role.AUTHORIZER:
            out += [encode_record(RecordType.STDIN, i, c) for c in self.stdin]
            out.append(encode_record(RecordType.STDIN, i))
        if self.role == Role.FILTER:
            out += [encode_record(RecordType.DATA, i, c) for c in self.data]
            out.append(encode_record(RecordType.DATA, i))
        return out

    def events(self) -> list[Event]:
        i = self.request_id
        out: list[Event] = [RequestReceived(i, self.role, self.keep_conn, self.params)]
        if self.role != Role.AUTHORIZER:
            out += [Stdin(i, c) for c in self.stdin]
        out.append(StdinEnd(i))
        if self.role == Role.FILTER:
            out += [Data(i, c) for c in self.data] + [DataEnd(i)]
        return out


chunks = st.lists(st.binary(min_size=1, max_size=30), max_size=4)


@st.composite
def plans(draw: st.DrawFn) -> list[Plan]:
    ids = draw(st.lists(st.integers(1, 65535), min_size=1, max_size=4, unique=True))
    return [
        Plan(
            i,
            draw(st.sampled_from(Role)),
            draw(st.booleans()),
            draw(pairs_strategy),
            draw(chunks),
            draw(chunks),
        )
        for i in ids
    ]


@st.composite
def interleaved(draw: st.DrawFn) -> tuple[list[Plan], bytes]:
    """Several requests with their records mixed in a random order that keeps each id's order,
    and GET_VALUES records dropped in anywhere."""
    requests = draw(plans())
    queues = [p.records() for p in requests]
    out: list[bytes] = []
    while any(queues):
        if draw(st.integers(0, 9)) == 0:
            out.append(get_values(b"FCGI_MPXS_CONNS"))
        queue = draw(st.sampled_from([q for q in queues if q]))
        out.append(queue.pop(0))
    return requests, b"".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(interleaved(), st.lists(st.integers(0, 100_000), max_size=20))
def test_request_stream_in_any_chunks(case: tuple[list[Plan], bytes], cuts: list[int]) -> None:
    requests, raw = case
    whole = FastCGIConnection()
    events = whole.receive_data(raw)
    split = FastCGIConnection()
    split_events: list[Event] = []
    for chunk in _split(raw, cuts):
        split_events += split.receive_data(chunk)
    assert split_events == events
    assert split.data_to_send() == whole.data_to_send()
    for plan in requests:
        assert [e for e in events if e.request_id == plan.request_id] == plan.events()
    assert whole.active_requests == {p.request_id for p in requests}


# -- garbage ------------------------------------------------------------------------------------

BEGIN_BODIES = [bytes((0, role, flags, 0, 0, 0, 0, 0)) for role in (1, 2, 3, 9) for flags in (0, 1)]
fuzzy_ids = st.integers(0, 2)
# Mostly records a web server sends, so that requests get far enough to emit events.
fuzzy_record = st.one_of(
    st.builds(
        encode_record, st.just(RecordType.BEGIN_REQUEST), fuzzy_ids, st.sampled_from(BEGIN_BODIES)
    ),
    st.builds(
        encode_record, st.just(RecordType.PARAMS), fuzzy_ids, pairs_strategy.map(encode_params)
    ),
    st.builds(encode_record, st.sampled_from([2, 4, 5, 8]), fuzzy_ids),
    st.builds(
        encode_record, st.sampled_from([5, 8]), fuzzy_ids, st.binary(min_size=1, max_size=12)
    ),
    st.builds(encode_record, st.integers(0, 14), fuzzy_ids, st.binary(max_size=12)),
)
fuzzy_records = st.lists(fuzzy_record, max_size=40).map(b"".join)


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid request stream with a few bytes overwritten, inserted or deleted."""
    raw = bytearray(draw(interleaved())[1])
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(raw)))
        byte = draw(st.integers(0, 255))
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "insert" or pos == len(raw):
            raw.insert(pos, byte)
        elif action == "set":
            raw[pos] = byte
        else:
            del raw[pos]
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=200), fuzzy_records, mutated_requests()),
    st.lists(st.integers(0, 2000), max_size=8),
)
def test_garbage_yields_events_or_protocol_error(raw: bytes, cuts: list[int]) -> None:
    conn = FastCGIConnection()
    try:
        for chunk in _split(raw, cuts):
            for event in conn.receive_data(chunk):
                assert conn.is_active(event.request_id)
    except ProtocolError:
        return
    # Whatever was accepted, the output is well-framed and every active request can be ended.
    for request_id in sorted(conn.active_requests):
        conn.send_stdout(request_id, b"out")
        conn.end_request(request_id)
    parse_records(conn.data_to_send())
    assert conn.active_requests == frozenset()
