"""read_request_head against both twins: shared vectors, differential properties, leaks.

Rules: every vector runs on the Python twin (the reference) and on the C twin; the properties
compare the twins with the same ``outcome`` as tests/codec/test_differential.py; a head is built
here from bytes by hand (header fields spelled out), never by the code under test.
"""

from __future__ import annotations

import array
import struct
import sys
from itertools import pairwise
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from .test_differential import outcome, thorough
from .test_leaks import ATTEMPTS, GROWTH_LIMIT, traced_growth

BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA, GET_VALUES = 1, 2, 4, 5, 8, 9
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
KEEP_CONN = 1
NO_LIMIT = 1 << 20  # far above any vector here: the limit plays no part

Pairs = list[tuple[bytes, bytes]]
Head = tuple[int, int, Pairs, bool]


def record(
    record_type: int, request_id: int, content: bytes = b"", padding: int = 0, version: int = 1
) -> bytes:
    """One record with every header field given (padding bytes are 0xAA, not zeros)."""
    header = struct.pack(">BBHHBx", version, record_type, request_id, len(content), padding)
    return header + content + b"\xaa" * padding


def begin(
    request_id: int = 1, role: int = RESPONDER, flags: int = KEEP_CONN, padding: int = 0
) -> bytes:
    return record(BEGIN_REQUEST, request_id, struct.pack(">HB5x", role, flags), padding)


def pair(name: bytes, value: bytes) -> bytes:
    """One name-value pair, lengths in the 1- or 4-byte form FastCGI gives them."""

    def length(n: int) -> bytes:
        return bytes((n,)) if n < 0x80 else struct.pack(">I", n | 0x80000000)

    return length(len(name)) + length(len(value)) + name + value


def encoded(pairs: Pairs) -> bytes:
    return b"".join(pair(name, value) for name, value in pairs)


def params_records(request_id: int, raw: bytes, cuts: list[int], padding: int = 0) -> bytes:
    """``raw`` as PARAMS records cut at ``cuts`` (empty pieces skipped), then the empty one."""
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in pairwise(edges) if b > a]
    out = b"".join(record(PARAMS, request_id, piece, padding) for piece in pieces)
    return out + record(PARAMS, request_id, b"", padding)


# What nginx sends for a GET with fastcgi_keep_conn on (its records padded to 8 bytes).
NGINX_PAIRS: Pairs = [
    (b"QUERY_STRING", b"a=1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"CONTENT_TYPE", b""),
    (b"CONTENT_LENGTH", b""),
    (b"SCRIPT_NAME", b"/app"),
    (b"REQUEST_URI", b"/app?a=1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"HTTP_USER_AGENT", b"x" * 200),  # a value over 127 bytes: the 4-byte length form
    (b"HTTP_HOST", b"localhost"),
]
NGINX_RAW = encoded(NGINX_PAIRS)
NGINX_PARAMS = record(PARAMS, 1, NGINX_RAW, -len(NGINX_RAW) % 8)
NGINX_GET = begin(1) + NGINX_PARAMS + record(PARAMS, 1) + record(STDIN, 1)
NGINX_HEAD = (1, KEEP_CONN, NGINX_PAIRS, True)


def read(codec: ModuleType, data: Any, max_bytes: int = NO_LIMIT, max_count: int = NO_LIMIT) -> Any:
    """``read_request_head`` with the result's types checked on the way."""
    head = codec.read_request_head(data, max_bytes, max_count)
    if head is not None:
        assert type(head) is tuple and type(head[2]) is list and type(head[3]) is bool
        assert all(type(n) is bytes and type(v) is bytes for n, v in head[2])
    return head


# -- heads it reads ---------------------------------------------------------------------------


def test_nginx_get(codec: ModuleType) -> None:
    assert read(codec, NGINX_GET) == NGINX_HEAD


def test_without_the_stdin_record(codec: ModuleType) -> None:
    data = begin(1) + NGINX_PARAMS + record(PARAMS, 1)
    assert read(codec, data) == (1, KEEP_CONN, NGINX_PAIRS, False)


def test_flags_come_back_as_sent(codec: ModuleType) -> None:
    for flags in (0, KEEP_CONN, 0xFE, 0xFF):
        data = begin(7, flags=flags) + record(PARAMS, 7) + record(STDIN, 7)
        assert read(codec, data) == (7, flags, [], True)


def test_largest_request_id(codec: ModuleType) -> None:
    data = begin(0xFFFF) + params_records(0xFFFF, NGINX_RAW, []) + record(STDIN, 0xFFFF)
    assert read(codec, data) == (0xFFFF, KEEP_CONN, NGINX_PAIRS, True)


@pytest.mark.parametrize(
    "cuts",
    [
        [1],  # inside the first pair's name length
        [2, 3],  # between the lengths, then inside the name
        [5, 40, 41, 90],  # names and values cut anywhere, a one-byte record among them
        [200, 230],  # inside the 4-byte length of the long value
        list(range(1, len(NGINX_RAW))),  # one byte per record
    ],
)
def test_params_over_several_records(codec: ModuleType, cuts: list[int]) -> None:
    data = begin(3) + params_records(3, NGINX_RAW, cuts) + record(STDIN, 3)
    assert read(codec, data) == (3, KEEP_CONN, NGINX_PAIRS, True)


@pytest.mark.parametrize("padding", [1, 7, 8, 255])
def test_padding_on_every_record(codec: ModuleType, padding: int) -> None:
    data = (
        begin(2, padding=padding)
        + params_records(2, NGINX_RAW, [100], padding)
        + record(STDIN, 2, b"", padding)
    )
    assert read(codec, data) == (2, KEEP_CONN, NGINX_PAIRS, True)
    assert read(codec, data[: -8 - padding]) == (2, KEEP_CONN, NGINX_PAIRS, False)


def test_no_params(codec: ModuleType) -> None:
    assert read(codec, begin(1) + record(PARAMS, 1)) == (1, KEEP_CONN, [], False)


def test_buffer_kinds(codec: ModuleType) -> None:
    aligned = NGINX_GET
    assert len(aligned) % 8 == 0  # so that every item size below divides it
    kinds = [
        bytearray(aligned),
        memoryview(aligned),
        memoryview(b"junk" + aligned)[4:],  # a view that does not start at its buffer's start
        memoryview(array.array("H", aligned)),  # other item formats: read as their bytes
        memoryview(array.array("I", aligned)),
        memoryview(aligned).cast("Q"),
    ]
    for data in kinds:
        assert read(codec, data) == NGINX_HEAD


# -- what gives None --------------------------------------------------------------------------

GOOD_BEGIN, GOOD_END, GOOD_STDIN = begin(1), record(PARAMS, 1), record(STDIN, 1)
NOT_A_HEAD = {
    "empty": b"",
    "one byte": b"\x01",
    "BEGIN only": GOOD_BEGIN,
    "BEGIN and part of a header": GOOD_BEGIN + GOOD_END[:7],
    "no empty PARAMS": GOOD_BEGIN + NGINX_PARAMS,
    "no empty PARAMS, STDIN instead": GOOD_BEGIN + NGINX_PARAMS + GOOD_STDIN,
    "request id 0": begin(0) + record(PARAMS, 0) + record(STDIN, 0),
    "authorizer": begin(1, AUTHORIZER) + GOOD_END,
    "filter": begin(1, FILTER) + GOOD_END + GOOD_STDIN,
    "unknown role": begin(1, 9) + GOOD_END,
    "role 0x0101": begin(1, 0x0101) + GOOD_END,
    "role 0": begin(1, 0) + GOOD_END,
    "BEGIN body of 7": record(BEGIN_REQUEST, 1, b"\x00\x01\x01" + bytes(4)) + GOOD_END,
    "BEGIN body of 9": record(BEGIN_REQUEST, 1, b"\x00\x01\x01" + bytes(6)) + GOOD_END,
    "BEGIN body of 0": record(BEGIN_REQUEST, 1) + GOOD_END,
    "first record not BEGIN": GOOD_END + GOOD_BEGIN + GOOD_END,
    "GET_VALUES first": record(GET_VALUES, 0) + GOOD_BEGIN + GOOD_END,
    "PARAMS of another id": GOOD_BEGIN + record(PARAMS, 2, NGINX_RAW) + GOOD_END,
    "empty PARAMS of another id": GOOD_BEGIN + record(PARAMS, 2),
    "empty PARAMS of id 0": GOOD_BEGIN + record(PARAMS, 0),
    "a record of another id between": GOOD_BEGIN + record(STDIN, 2) + GOOD_END,
    "ABORT between": GOOD_BEGIN + record(ABORT_REQUEST, 1) + GOOD_END,
    "STDIN before the empty PARAMS": GOOD_BEGIN + NGINX_PARAMS + GOOD_STDIN + GOOD_END,
    "empty STDIN of another id": GOOD_BEGIN + GOOD_END + record(STDIN, 2),
    "non-empty STDIN": GOOD_BEGIN + GOOD_END + record(STDIN, 1, b"body"),
    "non-empty STDIN, then its end": GOOD_BEGIN + GOOD_END + record(STDIN, 1, b"b") + GOOD_STDIN,
    "DATA instead of STDIN": GOOD_BEGIN + GOOD_END + record(DATA, 1),
    "a second empty PARAMS": GOOD_BEGIN + GOOD_END + GOOD_END,
    "a byte after the STDIN": GOOD_BEGIN + GOOD_END + GOOD_STDIN + b"\x01",
    "a record after the STDIN": GOOD_BEGIN + GOOD_END + GOOD_STDIN + record(GET_VALUES, 0),
    "a second STDIN": GOOD_BEGIN + GOOD_END + GOOD_STDIN + GOOD_STDIN,
    "the next request after it": GOOD_BEGIN + GOOD_END + GOOD_STDIN + begin(2) + record(PARAMS, 2),
    "ABORT after it": GOOD_BEGIN + GOOD_END + GOOD_STDIN + record(ABORT_REQUEST, 1),
    "BEGIN padding over the PARAMS": begin(1, padding=200)[:16] + GOOD_END,
    "PARAMS padding past the end": GOOD_BEGIN + record(PARAMS, 1, b"", 3)[:-1],
    "STDIN padding past the end": GOOD_BEGIN + GOOD_END + record(STDIN, 1, b"", 3)[:-1],
    "STDIN padding short of the end": GOOD_BEGIN + GOOD_END + record(STDIN, 1, b"", 3) + b"\xaa",
    "PARAMS content past the end": GOOD_BEGIN + record(PARAMS, 1, NGINX_RAW)[:-1],
    "version 2 BEGIN": record(BEGIN_REQUEST, 1, begin()[8:], version=2) + GOOD_END,
    "version 0 BEGIN": record(BEGIN_REQUEST, 1, begin()[8:], version=0) + GOOD_END,
    "version 2 PARAMS": GOOD_BEGIN + record(PARAMS, 1, NGINX_RAW, version=2) + GOOD_END,
    "version 2 empty PARAMS": GOOD_BEGIN + record(PARAMS, 1, version=2),
    "version 2 STDIN": GOOD_BEGIN + GOOD_END + record(STDIN, 1, version=2),
    "truncated name length": GOOD_BEGIN + record(PARAMS, 1, b"\x80\x00") + GOOD_END,
    "truncated value length": GOOD_BEGIN + record(PARAMS, 1, b"\x01") + GOOD_END,
    "pair past its stream": GOOD_BEGIN + record(PARAMS, 1, b"\x01\x05ab") + GOOD_END,
    "4-byte length past its stream": GOOD_BEGIN
    + record(PARAMS, 1, b"\x01\xff\xff\xff\xffab")
    + GOOD_END,
    "good pairs, then a bad one": GOOD_BEGIN + record(PARAMS, 1, NGINX_RAW + b"\x03") + GOOD_END,
}


@pytest.mark.parametrize("data", NOT_A_HEAD.values(), ids=NOT_A_HEAD.keys())
def test_not_a_head(codec: ModuleType, data: bytes) -> None:
    assert read(codec, data) is None
    assert read(codec, bytearray(data)) is None
    assert read(codec, memoryview(data)) is None


def test_every_truncation(codec: ModuleType) -> None:
    """Cut anywhere, only the cut right after the empty PARAMS is still a head."""
    data = begin(1) + params_records(1, NGINX_RAW, [10, 11], 5) + record(STDIN, 1, b"", 2)
    without_stdin = len(data) - 10
    for cut in range(len(data)):
        expected = (1, KEEP_CONN, NGINX_PAIRS, False) if cut == without_stdin else None
        assert read(codec, data[:cut]) == expected, cut
    assert read(codec, data) == NGINX_HEAD


SIZE = len(NGINX_RAW)


@pytest.mark.parametrize("cuts", [[], [SIZE // 2], [1, SIZE - 1]])
def test_params_bytes_limit(codec: ModuleType, cuts: list[int]) -> None:
    """The limit counts PARAMS content over all records (not headers, not padding)."""
    data = begin(1) + params_records(1, NGINX_RAW, cuts, 3) + record(STDIN, 1)
    assert read(codec, data, max_bytes=SIZE) == NGINX_HEAD
    assert read(codec, data, max_bytes=SIZE - 1) is None
    assert read(codec, data, max_bytes=0) is None
    assert read(codec, data, max_bytes=-1) is None


def test_params_count_limit(codec: ModuleType) -> None:
    count = len(NGINX_PAIRS)
    assert read(codec, NGINX_GET, max_count=count) == NGINX_HEAD
    assert read(codec, NGINX_GET, max_count=count - 1) is None
    assert read(codec, NGINX_GET, max_count=0) is None


def test_limits_without_params(codec: ModuleType) -> None:
    """No PARAMS content: no byte limit can be crossed; a count limit below 0 still is."""
    data = begin(1) + record(PARAMS, 1)
    assert read(codec, data, 0, 0) == (1, KEEP_CONN, [], False)
    assert read(codec, data, -1, 0) == (1, KEEP_CONN, [], False)
    assert read(codec, data, 0, -1) is None


def test_limits_beyond_machine_integers(codec: ModuleType) -> None:
    assert read(codec, NGINX_GET, 2**100, 2**100) == NGINX_HEAD
    assert read(codec, NGINX_GET, -(2**100), 2**100) is None
    assert read(codec, NGINX_GET, 2**100, -(2**100)) is None
    assert read(codec, NGINX_GET, True, NO_LIMIT) is None  # bool is an int: a limit of 1


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["text", None, 5, [1, 2], array.array("B", NGINX_GET)])
def test_data_that_is_not_a_byte_buffer(codec: ModuleType, data: object) -> None:
    with pytest.raises(TypeError, match="data must be bytes, bytearray or memoryview"):
        codec.read_request_head(data, NO_LIMIT, NO_LIMIT)


@pytest.mark.parametrize("limit", [1.0, None, "10", b"10"])
def test_limits_that_are_not_integers(codec: ModuleType, limit: object) -> None:
    for args in ((limit, NO_LIMIT), (NO_LIMIT, limit)):
        with pytest.raises(TypeError, match="limits must be integers"):
            codec.read_request_head(NGINX_GET, *args)
        with pytest.raises(TypeError, match="limits must be integers"):
            codec.read_request_head(b"", *args)  # checked even when there is nothing to read


def test_keywords(codec: ModuleType) -> None:
    head = codec.read_request_head(
        max_params_count=NO_LIMIT, data=NGINX_GET, max_params_bytes=NO_LIMIT
    )
    assert head == NGINX_HEAD


BAD_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {"max_params_bytes": 1, "max_params_count": 1}),
    ((NGINX_GET, 1), {}),
    ((NGINX_GET, 1, 1, 1), {}),
    ((NGINX_GET, 1, 1), {"data": NGINX_GET}),
    ((NGINX_GET, 1), {"max_params": 1}),
    ((5, 1.5), {}),  # both wrong: the data is named first
]


@pytest.mark.parametrize(("args", "kwargs"), BAD_CALLS)
def test_argument_errors_agree(
    c_codec: ModuleType, py_codec: ModuleType, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    expected = outcome(py_codec.read_request_head, *args, **kwargs)
    assert expected[0] == "raised" and expected[1] is TypeError
    assert outcome(c_codec.read_request_head, *args, **kwargs) == expected


# -- C vs Python on generated input -----------------------------------------------------------

LIMITS = st.one_of(
    st.integers(-2, 700),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, True, False]),
)
BUFFER_KINDS = st.sampled_from([bytes, bytearray, memoryview])
PAIRS = st.lists(st.tuples(st.binary(max_size=140), st.binary(max_size=140)), max_size=6)


@st.composite
def heads(draw: st.DrawFn) -> tuple[bytes, Head]:
    """A valid responder opening (any id, flags, cuts and padding) and what it must read as."""
    request_id = draw(st.integers(1, 0xFFFF))
    flags = draw(st.integers(0, 255))
    pairs = draw(PAIRS)
    raw = encoded(pairs)
    cuts = draw(st.lists(st.integers(0, len(raw)), max_size=4))
    pad = st.integers(0, 12)
    edges = sorted({0, len(raw), *cuts})
    data = begin(request_id, flags=flags, padding=draw(pad))
    for a, b in pairwise(edges):
        if b > a:
            data += record(PARAMS, request_id, raw[a:b], draw(pad))
    data += record(PARAMS, request_id, b"", draw(pad))
    input_done = draw(st.booleans())
    if input_done:
        data += record(STDIN, request_id, b"", draw(pad))
    return data, (request_id, flags, pairs, input_done)


@st.composite
def mutated_heads(draw: st.DrawFn) -> bytes:
    """A valid opening with one byte overwritten, inserted or deleted."""
    data = bytearray(draw(heads())[0])
    pos = draw(st.integers(0, len(data) - 1))
    byte = draw(st.integers(0, 255))
    action = draw(st.sampled_from(["set", "set", "insert", "delete"]))
    if action == "set":
        data[pos] = byte
    elif action == "insert":
        data.insert(pos, byte)
    else:
        del data[pos]
    return bytes(data)


def same_head(c: ModuleType, py: ModuleType, data: Any, max_bytes: Any, max_count: Any) -> None:
    expected = outcome(py.read_request_head, data, max_bytes, max_count)
    assert outcome(c.read_request_head, data, max_bytes, max_count) == expected


@thorough
@given(data=st.binary(max_size=300), max_bytes=LIMITS, max_count=LIMITS, kind=BUFFER_KINDS)
@example(data=NGINX_GET, max_bytes=NO_LIMIT, max_count=NO_LIMIT, kind=bytes)
def test_read_request_head_on_any_bytes(
    c_codec: ModuleType,
    py_codec: ModuleType,
    data: bytes,
    max_bytes: int,
    max_count: int,
    kind: type,
) -> None:
    same_head(c_codec, py_codec, kind(data), max_bytes, max_count)


@thorough
@given(data=mutated_heads(), kind=BUFFER_KINDS)
def test_read_request_head_on_mutated_heads(
    c_codec: ModuleType, py_codec: ModuleType, data: bytes, kind: type
) -> None:
    same_head(c_codec, py_codec, kind(data), NO_LIMIT, NO_LIMIT)


@thorough
@given(case=heads(), max_bytes=LIMITS, max_count=LIMITS, kind=BUFFER_KINDS)
def test_read_request_head_with_any_limits(
    c_codec: ModuleType,
    py_codec: ModuleType,
    case: tuple[bytes, Head],
    max_bytes: int,
    max_count: int,
    kind: type,
) -> None:
    data, head = case
    size, count = len(encoded(head[2])), len(head[2])
    over = (size > 0 and size > max_bytes) or count > max_count
    assert read(py_codec, kind(data), max_bytes, max_count) == (None if over else head)
    same_head(c_codec, py_codec, kind(data), max_bytes, max_count)


# -- the C twin's references and memory --------------------------------------------------------

LEAK_CALLS: list[tuple[Any, ...]] = [
    (NGINX_GET, NO_LIMIT, NO_LIMIT),  # one PARAMS record
    (begin(1) + params_records(1, NGINX_RAW, [3, 50, 220]) + GOOD_STDIN, NO_LIMIT, NO_LIMIT),
    (NGINX_GET, NO_LIMIT, 1),  # too many pairs: the decoded list is dropped
    (NGINX_GET, 10, NO_LIMIT),
    (NOT_A_HEAD["good pairs, then a bad one"], NO_LIMIT, NO_LIMIT),  # ValueError cleared
    (begin(1) + params_records(1, NGINX_RAW + b"\x03", [7]), NO_LIMIT, NO_LIMIT),
    (NOT_A_HEAD["non-empty STDIN"], NO_LIMIT, NO_LIMIT),
    (bytearray(NGINX_GET), NO_LIMIT, NO_LIMIT),
    (memoryview(array.array("I", NGINX_GET + bytes(-len(NGINX_GET) % 4))), NO_LIMIT, NO_LIMIT),
    (NGINX_GET, 1.5, NO_LIMIT),  # TypeError after the buffer was taken
    ("text", NO_LIMIT, NO_LIMIT),
]


@pytest.mark.parametrize("args", LEAK_CALLS)
def test_request_head_no_leaks(c_codec: ModuleType, args: tuple[Any, ...]) -> None:
    function = c_codec.read_request_head
    counts = [sys.getrefcount(arg) for arg in args]
    growth = min(traced_growth(function, args, {}) for _ in range(ATTEMPTS))
    assert growth < GROWTH_LIMIT
    assert [sys.getrefcount(arg) for arg in args] == counts
