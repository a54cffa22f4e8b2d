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
]


def test_argument_errors(c_codec: ModuleType, py_codec: ModuleType) -> None:
    for name, args, kwargs in BAD_CALLS:
        same_outcome(c_codec, py_codec, name, *args, **kwargs)


def test_same_public_names(c_codec: ModuleType, py_codec: ModuleType) -> None:
    public = {name for name in dir(c_codec) if not name.startswith("__")}
    assert public == set(py_codec.__all__) | {"_sha1"}
