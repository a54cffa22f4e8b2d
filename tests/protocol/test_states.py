"""The state matrix: every role x every reachable input state x every record type, empty and not.

The expected outcomes below are written out by hand from the FastCGI 1.0 specification and
DESIGN.md, independently of ``smisk.protocol.state.TRANSITIONS``: the two must agree. Each cell is
checked for its events, for silence on the wire, and for the state the request is left in (found by
probing a copy of the connection with the stream records and matching the answers to a row).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from smisk.codec import encode_params
from smisk.protocol import (
    KEEP_CONN,
    Data,
    DataEnd,
    Event,
    FastCGIConnection,
    Limits,
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

from .helpers import abort, begin, begin_body, data, get_values, params, parse_records, stdin

R, A, F = Role.RESPONDER, Role.AUTHORIZER, Role.FILTER
P, S, D, AB = RecordType.PARAMS, RecordType.STDIN, RecordType.DATA, RecordType.ABORT_REQUEST
PARAMS, STDIN, DATA = "PARAMS", "STDIN", "DATA"
INPUT_DONE, ABORTED, REFUSED = "INPUT_DONE", "ABORTED", "REFUSED"
ERROR = "error"

Outcome = tuple[tuple[str, ...], str]  # (names of the events emitted, state afterwards)
Row = dict[int, tuple[Outcome, Outcome]]  # record type -> (non-empty record, empty record)


def _same(state: str, *events: str) -> tuple[Outcome, Outcome]:
    """Empty or not, the record has the same outcome."""
    return (events, state), (events, state)


def _stream(state: str, chunk: str, end: tuple[str, ...], after: str) -> tuple[Outcome, Outcome]:
    """A stream record: a non-empty one is a chunk; the empty one ends the stream."""
    return ((chunk,) if chunk else (), state), (end, after)


# -- the expectation table ----------------------------------------------------------------------
# A record type missing from a row is a RemoteProtocolError. So are, in every state: BEGIN_REQUEST
# (the id is active), the types only an application sends (END_REQUEST, STDOUT, STDERR,
# GET_VALUES_RESULT, UNKNOWN_TYPE), GET_VALUES with a request id, and any unknown type.

ABORTS: Row = {AB: _same(ABORTED, "aborted")}
# Aborted: input and further aborts are dropped until the application ends the request.
ABORTED_ROW: Row = {P: _same(ABORTED), S: _same(ABORTED), D: _same(ABORTED), AB: _same(ABORTED)}
# Refused: input is discarded, but an abort still tells the layer above to stop answering.
REFUSED_ROW: Row = {P: _same(REFUSED), S: _same(REFUSED), D: _same(REFUSED), **ABORTS}

EXPECTED: dict[Role, dict[str, Row]] = {
    R: {
        PARAMS: {P: _stream(PARAMS, "", ("received",), STDIN), **ABORTS},
        STDIN: {S: _stream(STDIN, "stdin", ("stdin_end",), INPUT_DONE), **ABORTS},
        INPUT_DONE: {**ABORTS},
        ABORTED: ABORTED_ROW,
        REFUSED: REFUSED_ROW,
    },
    A: {
        # An authorizer has no body: the end of PARAMS also ends STDIN.
        PARAMS: {P: _stream(PARAMS, "", ("received", "stdin_end"), INPUT_DONE), **ABORTS},
        # Front ends may still send an (empty) STDIN; it is dropped.
        INPUT_DONE: {S: _same(INPUT_DONE), **ABORTS},
        ABORTED: ABORTED_ROW,
        REFUSED: REFUSED_ROW,
    },
    F: {
        PARAMS: {P: _stream(PARAMS, "", ("received",), STDIN), **ABORTS},
        STDIN: {S: _stream(STDIN, "stdin", ("stdin_end",), DATA), **ABORTS},
        DATA: {D: _stream(DATA, "data", ("data_end",), INPUT_DONE), **ABORTS},
        INPUT_DONE: {**ABORTS},
        ABORTED: ABORTED_ROW,
        REFUSED: REFUSED_ROW,
    },
}


def expected_outcome(role: Role, state: str, record_type: int, empty: bool) -> Outcome | str:
    cell = EXPECTED[role][state].get(record_type)
    if cell is None:
        return ERROR
    return cell[1] if empty else cell[0]


# -- ways into each state -----------------------------------------------------------------------

FIRST = [(b"A", b"1")]
BYTES_LIMIT = Limits(max_params_bytes=16)
COUNT_LIMIT = Limits(max_params_count=1)
TOO_BIG = encode_params([(b"TOO_BIG", b"x" * 20)])
TWO = [(b"A", b"1"), (b"B", b"2")]


@dataclass(frozen=True)
class Setup:
    prefix: bytes
    params_so_far: list[tuple[bytes, bytes]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)


def _setups(role: Role) -> dict[str, dict[str, Setup]]:
    b = begin(1, role, keep_conn=True)
    got = b + params(1, FIRST)
    body = got + stdin(1)
    done = {R: body, A: got, F: body + data(1)}[role]
    ways: dict[str, dict[str, Setup]] = {
        PARAMS: {"begun": Setup(b), "some params": Setup(b + params(1, FIRST, end=False), FIRST)},
        INPUT_DONE: {"input ended": Setup(done)},
        ABORTED: {"in params": Setup(b + abort(1)), "after input": Setup(done + abort(1))},
        REFUSED: {
            "params bytes": Setup(b + encode_record(P, 1, TOO_BIG), limits=BYTES_LIMIT),
            "params count": Setup(b + params(1, TWO), limits=COUNT_LIMIT),
        },
    }
    ways[ABORTED]["after refusal"] = Setup(b + params(1, TWO) + abort(1), limits=COUNT_LIMIT)
    if role == A:
        ways[INPUT_DONE]["after empty stdin"] = Setup(got + stdin(1))
    if role != A:
        ways[STDIN] = {"params ended": Setup(got), "some body": Setup(got + stdin(1, b"b", False))}
        ways[ABORTED]["in stdin"] = Setup(got + stdin(1, b"b", False) + abort(1))
    if role == F:
        ways[DATA] = {"stdin ended": Setup(body), "some data": Setup(body + data(1, b"d", False))}
        ways[ABORTED]["in data"] = Setup(body + abort(1))
    return ways


SETUPS = {role: _setups(role) for role in Role}

# -- records tried in each state ----------------------------------------------------------------

CONTENT: dict[int, bytes] = {
    RecordType.BEGIN_REQUEST: begin_body(R, KEEP_CONN),
    RecordType.ABORT_REQUEST: b"\x00" * 8,  # ABORT_REQUEST has no body; one is not an error
    RecordType.PARAMS: encode_params([(b"B", b"2")]),
    RecordType.STDIN: b"body chunk",
    RecordType.DATA: b"data chunk",
    RecordType.END_REQUEST: b"\x00" * 8,
    RecordType.GET_VALUES: encode_params([(b"FCGI_MAX_CONNS", b"")]),
}
RECORD_TYPES = [*range(1, 12), 42]


def _make_events(role: Role, setup: Setup, names: tuple[str, ...], content: bytes) -> list[Event]:
    build: dict[str, Callable[[], Event]] = {
        "received": lambda: RequestReceived(1, role, True, setup.params_so_far),
        "stdin": lambda: Stdin(1, content),
        "stdin_end": lambda: StdinEnd(1),
        "data": lambda: Data(1, content),
        "data_end": lambda: DataEnd(1),
        "aborted": lambda: RequestAborted(1),
    }
    return [build[name]() for name in names]


EVENT_NAMES = {
    RequestReceived: "received",
    Stdin: "stdin",
    StdinEnd: "stdin_end",
    Data: "data",
    DataEnd: "data_end",
    RequestAborted: "aborted",
    RequestRefused: "refused",
}
PROBES = [(t, e) for t in (P, S, D, AB) for e in (False, True)]


def _try(conn: FastCGIConnection, record_type: int, empty: bool) -> tuple[str, ...] | str:
    probe = copy.deepcopy(conn)
    content = b"" if empty else CONTENT.get(record_type, b"some content")
    try:
        events = probe.receive_data(encode_record(record_type, 1, content))
    except RemoteProtocolError:
        return ERROR
    return tuple(EVENT_NAMES[type(e)] for e in events)


def state_of(conn: FastCGIConnection, role: Role) -> str | None:
    """The state whose expected answers to the stream records match what ``conn`` answers."""
    answers = [_try(conn, t, e) for t, e in PROBES]
    for state in EXPECTED[role]:
        row = [expected_outcome(role, state, t, e) for t, e in PROBES]
        if [o if o == ERROR else o[0] for o in row] == answers:
            return state
    return None


def _connection(setup: Setup) -> FastCGIConnection:
    conn = FastCGIConnection(setup.limits)
    conn.receive_data(setup.prefix)
    conn.data_to_send()
    return conn


CASES = [
    pytest.param(role, state, way, id=f"{role.name}-{state}-{way}")
    for role in Role
    for state, ways in SETUPS[role].items()
    for way in ways
]


def test_expected_rows_are_distinguishable() -> None:
    for role in Role:
        rows = [
            tuple(str(expected_outcome(role, s, t, e)[0]) for t, e in PROBES)
            for s in EXPECTED[role]
        ]
        assert len(set(rows)) == len(rows)


@pytest.mark.parametrize(("role", "state", "way"), CASES)
def test_setup_reaches_its_state(role: Role, state: str, way: str) -> None:
    assert state_of(_connection(SETUPS[role][state][way]), role) == state


@pytest.mark.parametrize("empty", [False, True], ids=["content", "empty"])
@pytest.mark.parametrize("record_type", RECORD_TYPES)
@pytest.mark.parametrize(("role", "state", "way"), CASES)
def test_matrix(role: Role, state: str, way: str, record_type: int, empty: bool) -> None:
    setup = SETUPS[role][state][way]
    conn = _connection(setup)
    content = b"" if empty else CONTENT.get(record_type, b"some content")
    raw = encode_record(record_type, 1, content)
    expected = expected_outcome(role, state, record_type, empty)
    if expected == ERROR:
        with pytest.raises(RemoteProtocolError):
            conn.receive_data(raw)
        with pytest.raises(RemoteProtocolError):  # the connection stays broken
            conn.receive_data(get_values(b"FCGI_MAX_CONNS"))
        return
    names, state_after = expected
    assert conn.receive_data(raw) == _make_events(role, setup, names, content)
    assert conn.data_to_send() == b""
    assert state_of(conn, role) == state_after


@pytest.mark.parametrize(("role", "state", "way"), CASES)
def test_management_records_in_every_state(role: Role, state: str, way: str) -> None:
    conn = _connection(SETUPS[role][state][way])
    assert conn.receive_data(get_values(b"FCGI_MPXS_CONNS") + encode_record(42, 0)) == []
    types = [t for t, _, _ in parse_records(conn.data_to_send())]
    assert types == [RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE]
    assert state_of(conn, role) == state


@pytest.mark.parametrize(("role", "state", "way"), CASES)
def test_other_ids_do_not_disturb_the_state(role: Role, state: str, way: str) -> None:
    conn = _connection(SETUPS[role][state][way])
    noise = begin(2, R, keep_conn=True) + params(2, FIRST) + stdin(2, b"x") + stdin(3, b"y")
    assert [e.request_id for e in conn.receive_data(noise)] == [2, 2, 2]
    assert state_of(conn, role) == state


@pytest.mark.parametrize(("role", "state", "way"), CASES)
def test_end_request_in_every_state(role: Role, state: str, way: str) -> None:
    conn = _connection(SETUPS[role][state][way])
    conn.end_request(1, 5)
    records = parse_records(conn.data_to_send())
    assert [(t, i) for t, i, _ in records] == [(RecordType.STDOUT, 1), (RecordType.END_REQUEST, 1)]
    assert not conn.is_active(1)
    assert not conn.should_close  # every setup asked for FCGI_KEEP_CONN
    # Whatever the state was, records for the ended id are now ignored.
    for record_type in (P, S, D, AB):
        assert conn.receive_data(encode_record(record_type, 1, b"late")) == []


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.name)
def test_reachable_states(role: Role) -> None:
    """Explore every sequence of stream records from BEGIN_REQUEST: exactly the states in the
    table are reachable, and no state outside it."""
    alphabet = [encode_record(t, 1, CONTENT[t]) for t in (P, S, D)]
    alphabet += [encode_record(t, 1) for t in (P, S, D, AB)] + [encode_record(P, 1, TOO_BIG)]
    start = FastCGIConnection(BYTES_LIMIT)
    start.receive_data(begin(1, role, keep_conn=True))
    seen = {state_of(start, role)}
    frontier = [start]
    while frontier:
        conn = frontier.pop()
        for raw in alphabet:
            nxt = copy.deepcopy(conn)
            try:
                nxt.receive_data(raw)
            except RemoteProtocolError:
                continue
            state = state_of(nxt, role)
            assert state is not None, "a state no row of the table describes"
            if state not in seen:
                seen.add(state)
                frontier.append(nxt)
    assert seen == set(EXPECTED[role])
