"""Differential tests: the C twin gives what the Python twin gives, on random input.

Rules: every comparison covers the result, its type, whether the input object itself came back,
and (when one twin raises) the exception type and message. Cross round-trips mix the twins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

# Text with NUL, controls, high-bit, 2- and 4-byte characters; and one with lone surrogates.
TEXT = st.text(st.characters(codec="utf-8"))
ANY_TEXT = st.text(st.characters(exclude_categories=()))
STRINGS = st.one_of(st.binary(), TEXT)
# Alphabets that make escapes, entities and separators frequent.
PERCENTISH = st.text("%+0123456789abcdefABCDEFgz \x00\xe5\u20ac\U0001d11e", max_size=40)
ENTITYISH = st.text("&;<>\"'amplgtquo#x \x00\xe5\u20ac\U0001d11e", max_size=40)
QUERYISH = st.text("&;=,%+ab \t09AFEfC3\x00\xe5\u20ac", max_size=60)
# Longer text built from the pieces that matter, so that vectorised paths see every boundary.
ENTITY_PIECES = ["&amp;", "&lt;", "&gt;", "&quot;", "&", "<", ">", '"', ";", "&am", "&quot", "a"]
PERCENT_PIECES = ["%41", "%c3%a5", "%", "%4", "+", "%%", "abcdefghijklmnop", "/", "\x00"]
ENTITY_RUNS = st.lists(st.sampled_from([*ENTITY_PIECES, "0123456789abcdef", "\xe5"]), max_size=80)
PERCENT_RUNS = st.lists(st.sampled_from([*PERCENT_PIECES, "\u20ac"]), max_size=80)
LONG_ENTITYISH = ENTITY_RUNS.map("".join)
LONG_PERCENTISH = PERCENT_RUNS.map("".join)
CHARSETS = st.sampled_from(["utf-8", "UTF8", "latin-1", "ascii", "cp1252", "utf-16", None, "bogus"])

# More examples than the default: these tests are fast and the twins must never drift.
# SMISK_CODEC_EXAMPLES lowers it where every call is slow (scripts/valgrind-codec).
thorough = settings(deadline=None, max_examples=int(os.environ.get("SMISK_CODEC_EXAMPLES", "300")))


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call did: its result (with type and identity to the first argument) or error."""
    try:
        result = function(*args, **kwargs)
    except Exception as error:  # the exception itself is what is compared
        return ("raised", type(error), str(error))
    same = bool(args) and result is args[0]
    return ("returned", type(result), result, same)


def same_outcome(c: ModuleType, py: ModuleType, name: str, *args: Any, **kwargs: Any) -> None:
    expected = outcome(getattr(py, name), *args, **kwargs)
    assert outcome(getattr(c, name), *args, **kwargs) == expected


STRING_FUNCTIONS = ["url_encode", "url_escape", "url_decode", "xml_escape", "xml_unescape"]


@thorough
@given(
    value=st.one_of(
        STRINGS,
        ANY_TEXT,
        PERCENTISH,
        ENTITYISH,
        PERCENTISH.map(str.encode),
        LONG_ENTITYISH,
        LONG_ENTITYISH.map(str.encode),
        LONG_PERCENTISH,
        LONG_PERCENTISH.map(str.encode),
    )
)
def test_string_functions(c_codec: ModuleType, py_codec: ModuleType, value: str | bytes) -> None:
    for name in STRING_FUNCTIONS:
        same_outcome(c_codec, py_codec, name, value)


@thorough
@given(value=st.one_of(STRINGS, ANY_TEXT), nbits=st.integers(-2, 8))
def test_pack(c_codec: ModuleType, py_codec: ModuleType, value: str | bytes, nbits: int) -> None:
    same_outcome(c_codec, py_codec, "pack", value, nbits)


@thorough
@given(
    query=st.one_of(QUERYISH, QUERYISH.map(str.encode), STRINGS),
    charset=CHARSETS,
    tolerant=st.booleans(),
    separator=st.sampled_from(["&", ";", ","]),
)
def test_decompose_query(
    c_codec: ModuleType,
    py_codec: ModuleType,
    query: str | bytes,
    charset: str | None,
    tolerant: bool,
    separator: str,
) -> None:
    same_outcome(c_codec, py_codec, "decompose_query", query, charset, tolerant, separator)


PAIR = st.tuples(st.binary(max_size=300), st.binary(max_size=300))


@thorough
@given(data=st.binary(max_size=600))
def test_decode_params_on_any_bytes(c_codec: ModuleType, py_codec: ModuleType, data: bytes) -> None:
    same_outcome(c_codec, py_codec, "decode_params", data)


@thorough
@given(pairs=st.lists(PAIR, max_size=5))
def test_params_cross_round_trip(
    c_codec: ModuleType, py_codec: ModuleType, pairs: list[tuple[bytes, bytes]]
) -> None:
    raw = c_codec.encode_params(pairs)
    assert raw == py_codec.encode_params(pairs)
    assert py_codec.decode_params(raw) == pairs
    assert c_codec.decode_params(py_codec.encode_params(pairs)) == pairs


@thorough
@given(pairs=st.lists(PAIR, min_size=1, max_size=4), data=st.data())
def test_decode_params_never_reads_past_its_buffer(
    c_codec: ModuleType, py_codec: ModuleType, pairs: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    raw = py_codec.encode_params(pairs)
    cut = data.draw(st.integers(0, len(raw)))
    # The bytes after the cut are there in memory but outside the view: they must stay unread.
    view = memoryview(raw + b"\x7f" * 64)[:cut]
    expected = outcome(py_codec.decode_params, view)
    assert outcome(c_codec.decode_params, view) == expected
    assert outcome(c_codec.decode_params, raw[:cut]) == expected
    if expected[0] == "returned":
        assert len(py_codec.encode_params(expected[2])) == cut


@thorough
@given(data=st.binary(max_size=20), offset=st.integers(-3, 24))
def test_parse_record_header(
    c_codec: ModuleType, py_codec: ModuleType, data: bytes, offset: int
) -> None:
    same_outcome(c_codec, py_codec, "parse_record_header", data, offset)
    same_outcome(c_codec, py_codec, "parse_record_header", bytearray(data), offset=offset)


@thorough
@given(value=st.one_of(STRINGS, PERCENTISH, LONG_PERCENTISH))
def test_url_cross_round_trips(
    c_codec: ModuleType, py_codec: ModuleType, value: str | bytes
) -> None:
    for encode in ("url_encode", "url_escape"):
        assert py_codec.url_decode(getattr(c_codec, encode)(value)) == value
        assert c_codec.url_decode(getattr(py_codec, encode)(value)) == value


@thorough
@given(value=st.one_of(STRINGS, ENTITYISH, LONG_ENTITYISH, LONG_ENTITYISH.map(str.encode)))
def test_xml_cross_round_trips(
    c_codec: ModuleType, py_codec: ModuleType, value: str | bytes
) -> None:
    assert py_codec.xml_unescape(c_codec.xml_escape(value)) == value
    assert c_codec.xml_unescape(py_codec.xml_escape(value)) == value


@thorough
@given(value=st.binary(max_size=64), nbits=st.sampled_from([4, 5, 6]))
def test_pack_is_lsb_first(c_codec: ModuleType, value: bytes, nbits: int) -> None:
    # An independent model: the input as one little-endian integer, cut into nbits digits.
    number = int.from_bytes(value, "little")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
    digits = -(-8 * len(value) // nbits)
    model = "".join(alphabet[(number >> (nbits * i)) & ((1 << nbits) - 1)] for i in range(digits))
    assert c_codec.pack(value, nbits) == model


@thorough
@given(data=st.binary(max_size=300))
def test_sha1(c_codec: ModuleType, py_codec: ModuleType, data: bytes) -> None:
    assert c_codec._sha1(data) == py_codec._sha1(data)


PAIR_PARTS = st.one_of(st.binary(max_size=40), st.binary(max_size=8).map(bytearray), st.text())


@thorough
@given(pairs=st.lists(st.tuples(PAIR_PARTS, PAIR_PARTS), max_size=12), as_list=st.booleans())
def test_params_text(
    c_codec: ModuleType, py_codec: ModuleType, pairs: list[tuple[Any, Any]], as_list: bool
) -> None:
    value = [list(pair) for pair in pairs] if as_list else pairs
    same_outcome(c_codec, py_codec, "params_text", value)
    if all(isinstance(part, bytes) for pair in pairs for part in pair):
        decoded = c_codec.params_text(py_codec.decode_params(c_codec.encode_params(pairs)))
        assert decoded == py_codec.params_text(pairs)


@thorough
@given(pairs=st.lists(st.tuples(PAIR_PARTS, PAIR_PARTS), max_size=12), as_list=st.booleans())
def test_params_latin1(
    c_codec: ModuleType, py_codec: ModuleType, pairs: list[tuple[Any, Any]], as_list: bool
) -> None:
    value = [list(pair) for pair in pairs] if as_list else pairs
    same_outcome(c_codec, py_codec, "params_latin1", value)
    if all(isinstance(part, bytes) for pair in pairs for part in pair):
        decoded = c_codec.params_latin1(py_codec.decode_params(c_codec.encode_params(pairs)))
        assert decoded == py_codec.params_latin1(pairs)
        assert decoded == {name.decode("latin-1"): value.decode("latin-1") for name, value in pairs}


# -- record framing ---------------------------------------------------------------------------

# Record headers as a peer might send them: mostly valid, some with another version, lengths
# that run past the buffer, and every record type the views care about.
HEADERS = st.tuples(
    st.sampled_from([1, 1, 1, 1, 0, 2, 255]),
    st.sampled_from([1, 3, 4, 5, 5, 6, 8, 8, 11, 200]),
    st.integers(0, 0xFFFF),
    st.integers(0, 64),
    st.integers(0, 12),
)
RECORD_STREAMS = st.lists(st.tuples(HEADERS, st.binary(max_size=64)), max_size=12)
BUFFER_KINDS = st.sampled_from([bytes, bytearray, memoryview])


def raw_records(records: list[tuple[tuple[int, int, int, int, int], bytes]]) -> bytes:
    """Records whose header lengths may disagree with the bytes that follow them."""
    out = b""
    for (version, kind, rid, length, padding), body in records:
        out += bytes((version, kind, rid >> 8, rid & 0xFF, length >> 8, length & 0xFF, padding, 0))
        out += body
    return out


def split_outcome(codec: ModuleType, *args: Any) -> tuple[Any, ...]:
    """split_records' outcome with each content's type named (a view or a copy)."""
    result = outcome(codec.split_records, *args)
    if result[0] == "raised":
        return result
    records, end = result[2]
    return ("returned", [(t, i, type(c).__name__, bytes(c)) for t, i, c in records], end)


@thorough
@given(
    records=RECORD_STREAMS,
    cut=st.integers(0, 64),
    offset=st.integers(-2, 40),
    view_from=st.sampled_from([0, -1, 1, 8, 64, 2**70]),
    kind=BUFFER_KINDS,
)
def test_split_records(
    c_codec: ModuleType,
    py_codec: ModuleType,
    records: list[tuple[tuple[int, int, int, int, int], bytes]],
    cut: int,
    offset: int,
    view_from: int,
    kind: type,
) -> None:
    raw = raw_records(records)
    data = kind(raw[: len(raw) - cut] if cut < len(raw) else raw)
    expected = split_outcome(py_codec, data, offset, view_from)
    assert split_outcome(c_codec, data, offset, view_from) == expected


@thorough
@given(data=st.binary(max_size=200), offset=st.integers(0, 24), view_from=st.integers(-1, 9))
def test_split_records_on_any_bytes(
    c_codec: ModuleType, py_codec: ModuleType, data: bytes, offset: int, view_from: int
) -> None:
    assert split_outcome(c_codec, data, offset, view_from) == split_outcome(
        py_codec, data, offset, view_from
    )


FIELDS = st.one_of(st.integers(-2, 0x10001), st.sampled_from([2**64, -(2**64), 1.0, "1", None]))
STREAM_SIZES = st.sampled_from([0, 1, 7, 8, 9, 65527, 65528, 65529, 65535, 65536, 131057])


@thorough
@given(
    record_type=FIELDS, request_id=FIELDS, size=STREAM_SIZES, kind=BUFFER_KINDS, byte=st.binary()
)
def test_frame_records(
    c_codec: ModuleType,
    py_codec: ModuleType,
    record_type: object,
    request_id: object,
    size: int,
    kind: type,
    byte: bytes,
) -> None:
    data = kind((byte or b"\x00") * size)[:size]
    same_outcome(c_codec, py_codec, "frame_records", record_type, request_id, data)


@thorough
@given(
    request_id=FIELDS,
    size=STREAM_SIZES,
    app_status=st.one_of(st.integers(), st.sampled_from([True, 1.5, None])),
    protocol_status=FIELDS,
    stderr_sent=st.sampled_from([False, True, 0, 2, "", None]),
    kind=BUFFER_KINDS,
)
def test_frame_end(
    c_codec: ModuleType,
    py_codec: ModuleType,
    request_id: object,
    size: int,
    app_status: object,
    protocol_status: object,
    stderr_sent: object,
    kind: type,
) -> None:
    data = kind(b"o" * size)
    same_outcome(
        c_codec, py_codec, "frame_end", request_id, data, app_status, protocol_status, stderr_sent
    )


@thorough
@given(record_type=st.integers(0, 255), request_id=st.integers(0, 0xFFFF), data=st.binary())
def test_framing_cross_round_trip(
    c_codec: ModuleType, py_codec: ModuleType, record_type: int, request_id: int, data: bytes
) -> None:
    for framer, splitter in ((c_codec, py_codec), (py_codec, c_codec)):
        framed = framer.frame_records(record_type, request_id, data)
        records, end = splitter.split_records(framed)
        assert end == len(framed) and len(framed) % 8 == 0
        assert b"".join(content for _, _, content in records) == data
        assert {(t, i) for t, i, _ in records} <= {(record_type, request_id)}
        ended, _ = splitter.split_records(framer.frame_end(request_id, data, 0, 0, True))
        assert ended[-3:] == [(6, request_id, b""), (7, request_id, b""), (3, request_id, bytes(8))]


BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("pack", (), {}),
    ("pack", (b"", 5, 6), {}),
    ("pack", (b"",), {"bogus": 1}),
    ("pack", (b"", 5), {"nbits": 5}),
    ("pack", (), {"nbits": 5}),
    ("uid", (5, None, 1), {}),
    ("uid", (), {"nbit": 5}),
    ("decompose_query", (), {}),
    ("decompose_query", ("", "utf-8", True, "&", 1), {}),
    ("decompose_query", ("",), {"sep": ";"}),
    ("decode_params", (), {}),
    ("decode_params", (b"", b""), {}),
    ("encode_params", (), {"pairs": [], "data": 1}),
    ("parse_record_header", (b"",), {"data": b""}),
    ("params_text", (), {}),
    ("params_text", ([], []), {}),
    ("params_text", ([],), {"pairs": []}),
    ("params_latin1", (), {}),
    ("params_latin1", ([], []), {}),
    ("params_latin1", ([],), {"pairs": []}),
    ("params_latin1", (), {"pair": []}),
    ("split_records", (), {}),
    ("split_records", (b"", 0, 0, 0), {}),
    ("split_records", (b"",), {"data": b""}),
    ("split_records", (b"",), {"views": 1}),
    ("frame_records", (6, 1), {}),
    ("frame_records", (6, 1, b"", b""), {}),
    ("frame_records", (6,), {"request_id": 1, "payload": b""}),
    ("frame_end", (), {}),
    ("frame_end", (1, b"", 0, 0, False, 1), {}),
    ("frame_end", (1,), {"request_id": 1}),
    ("frame_end", (1,), {"status": 0}),
]


def test_argument_errors(c_codec: ModuleType, py_codec: ModuleType) -> None:
    for name, args, kwargs in BAD_CALLS:
        same_outcome(c_codec, py_codec, name, *args, **kwargs)


def test_same_public_names(c_codec: ModuleType, py_codec: ModuleType) -> None:
    public = {name for name in dir(c_codec) if not name.startswith("__")}
    assert public == set(py_codec.__all__) | {"_sha1"}
