"""A request's opening read whole (``read_request_head`` in ``receive_data``) changes nothing: a
connection that takes it and one that always reads record by record see the same.

Rules: each scenario runs twice, once as is and once with ``read_request_head`` patched to return
None (the record-by-record path only); after every step both runs must have given the same
events, the same bytes to send, the same error and the same state. No event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smisk import codec
from smisk.protocol import (
    FastCGIConnection,
    Limits,
    ProtocolError,
    RecordType,
    RequestReceived,
    Role,
    encode_record,
)
from smisk.protocol import connection as connection_module

from .helpers import SAMPLE_PARAMS, abort, begin, get_values, params, stdin
from .test_properties import Plan, _split, chunks, fuzzy_records, mutated_requests, pairs_strategy

Step = tuple[str, bytes]  # ("feed", bytes) or ("end", b""): the application ends what is active
Trace = list[tuple[Any, ...]]


def snapshot(conn: FastCGIConnection) -> tuple[Any, ...]:
    """What the connection holds: its public state, and each request's role, keep_conn and input
    state (read off the table directly, so that a divergence shows at the step that made it)."""
    requests = {
        rid: (r.role, r.keep_conn, r.state)
        for rid, r in conn._requests.items()  # the state table's input, not exposed otherwise
    }
    return conn.active_requests, conn.should_close, conn.input_buffered, requests


def apply(conn: FastCGIConnection, step: Step) -> tuple[Any, ...]:
    kind, raw = step
    try:
        if kind == "feed":
            events = conn.receive_data(raw)
        else:
            events = []
            for request_id in sorted(conn.active_requests):
                conn.send_stdout(request_id, b"out")
                conn.end_request(request_id)
    except ProtocolError as error:
        return ("raised", type(error), str(error))
    return ("events", events, conn.data_to_send(), snapshot(conn))


def run(steps: list[Step], limits: Limits) -> Trace:
    conn = FastCGIConnection(limits)
    return [apply(conn, step) for step in steps]


@contextmanager
def head_reader(replacement: Callable[..., Any]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection_module, "read_request_head", replacement)
        yield


def both_ways(steps: list[Step], limits: Limits) -> tuple[Trace, Trace, int]:
    """The scenario with the one-read path (counting the heads it took) and without it."""
    taken = []

    def counting(data: bytes, max_bytes: int, max_count: int) -> Any:
        head = codec.read_request_head(data, max_bytes, max_count)
        if head is not None:
            taken.append(head)
        return head

    with head_reader(counting):
        fast = run(steps, limits)
    with head_reader(lambda *args: None):
        slow = run(steps, limits)
    return fast, slow, len(taken)


# -- scenarios --------------------------------------------------------------------------------

# The defaults half of the time, so that openings get read whole; else limits at every edge.
limits_strategy = st.one_of(
    st.builds(Limits, multiplex=st.booleans()),
    st.builds(
        Limits,
        max_params_bytes=st.sampled_from([0, 1, 60, 300, 1024 * 1024]),
        max_params_count=st.sampled_from([0, 1, 3, 2000]),
        max_requests_per_connection=st.sampled_from([-1, 0, 1, 2, 128]),
        multiplex=st.booleans(),
    ),
)


def head_and_rest(plan: Plan) -> tuple[bytes, bytes]:
    """A request's records split where a front end's first write ends: BEGIN and PARAMS (plus
    the empty STDIN of a responder without a body), then everything else."""
    records = plan.records()
    ended = records.index(encode_record(RecordType.PARAMS, plan.request_id)) + 1
    if plan.role == Role.RESPONDER and not plan.stdin:
        ended += 1
    return b"".join(records[:ended]), b"".join(records[ended:])


@st.composite
def request_steps(draw: st.DrawFn, request_id: int) -> list[Step]:
    """One request fed in one of several ways, then some follow-up records."""
    plan = Plan(
        request_id,
        draw(st.sampled_from([Role.RESPONDER] * 3 + [Role.AUTHORIZER, Role.FILTER])),
        draw(st.booleans()),
        draw(pairs_strategy),
        draw(st.one_of(st.just([]), chunks)),
        draw(chunks),
    )
    head, rest = head_and_rest(plan)
    how = draw(st.sampled_from(["head read whole"] * 3 + ["all in one read", "any chunks"]))
    cuts = draw(st.lists(st.integers(0, 3000), max_size=5))
    if how == "head read whole":
        reads = [head, *_split(rest, cuts)]
    elif how == "all in one read":
        reads = [head + rest]
    else:
        reads = _split(head + rest, cuts)
    steps = [("feed", raw) for raw in reads if raw]
    if draw(st.booleans()):  # body after the body ended: an error once input is done
        steps.append(("feed", encode_record(RecordType.STDIN, request_id, b"more")))
    if draw(st.booleans()):
        steps.append(("feed", abort(request_id)))
    if draw(st.booleans()):  # else the next request arrives while this one is active
        steps.append(("end", b""))
    return steps


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Step], Limits]:
    """Requests one after another on one connection (ids often repeating, as nginx reuses 1)."""
    steps: list[Step] = []
    for request_id in draw(st.lists(st.sampled_from([1, 1, 2, 0xFFFF]), min_size=1, max_size=4)):
        if draw(st.integers(0, 5)) == 0:
            steps.append(("feed", get_values(b"FCGI_MPXS_CONNS")))
        steps += draw(request_steps(request_id))
    return steps, draw(limits_strategy)


@st.composite
def garbage_scenarios(draw: st.DrawFn) -> tuple[list[Step], Limits]:
    """Garbage (mostly records a web server sends) in any chunks, the app ending what begins."""
    raw = draw(st.one_of(st.binary(max_size=200), fuzzy_records, mutated_requests()))
    steps: list[Step] = []
    for piece in _split(raw, draw(st.lists(st.integers(0, 2000), max_size=8))):
        steps.append(("feed", piece))
        if draw(st.booleans()):
            steps.append(("end", b""))
    return steps, draw(limits_strategy)


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_requests_one_after_another(case: tuple[list[Step], Limits]) -> None:
    steps, limits = case
    fast, slow, taken = both_ways(steps, limits)
    assert fast == slow
    event(f"openings read whole: {min(taken, 2)}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage_scenarios())
def test_garbage(case: tuple[list[Step], Limits]) -> None:
    steps, limits = case
    fast, slow, _ = both_ways(steps, limits)
    assert fast == slow


# -- vectors: the path is taken, and gives what the record path gives -------------------------

NGINX_GET = begin(1, keep_conn=True) + params(1, SAMPLE_PARAMS) + stdin(1)


@pytest.mark.parametrize("keep_conn", [True, False])
def test_nginx_requests_one_after_another(keep_conn: bool) -> None:
    get = begin(1, keep_conn=keep_conn) + params(1, SAMPLE_PARAMS) + stdin(1)
    post = begin(1, keep_conn=keep_conn) + params(1, SAMPLE_PARAMS)
    steps: list[Step] = [("feed", get), ("end", b"")]
    steps += [("feed", post), ("feed", stdin(1, b"a=1")), ("end", b"")]
    steps += [("feed", get), ("feed", abort(1)), ("end", b"")]
    fast, slow, taken = both_ways(steps, Limits())
    assert taken == 3
    assert fast == slow
    assert fast[0][0] == "events" and fast[-1][3][1] is not keep_conn  # should_close


@pytest.mark.parametrize(
    "limits",
    [
        Limits(max_params_bytes=10),
        Limits(max_params_count=2),
        Limits(max_requests_per_connection=0),
        Limits(max_requests_per_connection=-1),
    ],
)
def test_limits_refuse_the_same(limits: Limits) -> None:
    steps: list[Step] = [("feed", NGINX_GET), ("end", b""), ("feed", NGINX_GET)]
    fast, slow, _ = both_ways(steps, limits)
    assert fast == slow
    kind, events, _, _ = fast[0]
    assert kind == "events" and not any(isinstance(e, RequestReceived) for e in events)
