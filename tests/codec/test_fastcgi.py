"""decode_params / encode_params / parse_record_header against both twins."""

from __future__ import annotations

from types import ModuleType

import pytest


def long_length(length: int) -> bytes:
    return (length | 0x80000000).to_bytes(4, "big")


PAIRS = [(b"SCRIPT_NAME", b"/x"), (b"", b""), (b"N" * 128, b"v" * 300), (b"\x00\xff", b"\x80")]


def test_round_trip(codec: ModuleType) -> None:
    raw = codec.encode_params(PAIRS)
    assert raw.startswith(b"\x0b\x02SCRIPT_NAME/x\x00\x00" + long_length(128) + long_length(300))
    assert codec.decode_params(raw) == PAIRS


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_byte_buffers(codec: ModuleType, kind: type) -> None:
    raw = codec.encode_params(PAIRS)
    decoded = codec.decode_params(kind(raw))
    assert decoded == PAIRS
    assert all(type(part) is bytes for pair in decoded for part in pair)


def test_decode_reads_only_the_slice(codec: ModuleType) -> None:
    raw = b"\x01\x02abc" + b"\x01\x01xy"
    assert codec.decode_params(memoryview(raw)[:5]) == [(b"a", b"bc")]
    with pytest.raises(ValueError, match=r"^name-value pair longer than its stream$"):
        codec.decode_params(memoryview(raw)[:4])


TRUNCATED = [
    (b"\x01", "truncated name-value pair length"),
    (b"\x80\x00\x00", "truncated name-value pair length"),
    (b"\x01\x80\x00", "truncated name-value pair length"),
    (b"\x05\x00ab", "name-value pair longer than its stream"),
    (b"\x00\x05ab", "name-value pair longer than its stream"),
    (b"\xff\xff\xff\xff\xff\xff\xff\xffx", "name-value pair longer than its stream"),
    (b"\x7f\xff\xff\xff\xff" + b"x" * 16, "name-value pair longer than its stream"),
    (b"\x01\x01ab\x01", "truncated name-value pair length"),
]


@pytest.mark.parametrize(("raw", "message"), TRUNCATED)
def test_decode_rejects_truncated_streams(codec: ModuleType, raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        codec.decode_params(raw)


def test_encode_accepts_iterables_and_bytearrays(codec: ModuleType) -> None:
    pairs = iter([(bytearray(b"a"), b"b"), [b"c", bytearray(b"d")]])
    assert codec.encode_params(pairs) == b"\x01\x01ab\x01\x01cd"
    assert codec.encode_params(()) == b""


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(b"a", "b")], "names and values must be bytes"),
        ([("a", b"b")], "names and values must be bytes"),
        ([(b"a", memoryview(b"b"))], "names and values must be bytes"),
        ([b"ab"], r"name-value pairs must be \(name, value\) tuples"),
        ([(b"a",)], r"name-value pairs must be \(name, value\) tuples"),
        ([(b"a", b"b", b"c")], r"name-value pairs must be \(name, value\) tuples"),
        (5, "'int' object is not iterable"),
    ],
)
def test_encode_rejects_bad_pairs(codec: ModuleType, pairs: object, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{message}$"):
        codec.encode_params(pairs)


@pytest.mark.parametrize("data", ["text", 5, None])
def test_decode_rejects_non_buffers(codec: ModuleType, data: object) -> None:
    with pytest.raises(TypeError, match=r"^data must be bytes, bytearray or memoryview$"):
        codec.decode_params(data)


HEADER = b"\x01\x05\x01\x02\x03\x04\x07\x00"


def test_header(codec: ModuleType) -> None:
    assert codec.parse_record_header(HEADER) == (1, 5, 0x0102, 0x0304, 7)
    assert codec.parse_record_header(b"\xff" * 8) == (255, 255, 65535, 65535, 255)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_header_at_offset(codec: ModuleType, kind: type) -> None:
    data = kind(b"xyz" + HEADER + b"tail")
    assert codec.parse_record_header(data, 3) == (1, 5, 0x0102, 0x0304, 7)
    assert codec.parse_record_header(data, offset=3) == (1, 5, 0x0102, 0x0304, 7)


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b"", 0), (HEADER[:7], 0), (HEADER, 1), (HEADER, 9), (HEADER, -1), (HEADER, 2**80)],
)
def test_header_needs_eight_bytes(codec: ModuleType, data: bytes, offset: int) -> None:
    with pytest.raises(ValueError, match=r"^record header needs 8 bytes$"):
        codec.parse_record_header(data, offset)


def test_header_argument_types(codec: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^offset must be an integer$"):
        codec.parse_record_header(HEADER, "0")
    with pytest.raises(TypeError, match=r"^data must be bytes, bytearray or memoryview$"):
        codec.parse_record_header("01234567")


# -- params_text ------------------------------------------------------------------------------


def test_params_text(codec: ModuleType) -> None:
    pairs = [
        (b"SCRIPT_NAME", b"/x"),
        (b"HTTP_X", b"\xc3\xa5 \xe2\x82\xac"),
        (b"RAW", b"\xff\xfe"),
        (b"", b""),
        (b"SCRIPT_NAME", b"/later"),
    ]
    assert codec.params_text(pairs) == {
        "SCRIPT_NAME": "/later",
        "HTTP_X": "\xe5 \u20ac",
        "RAW": "\udcff\udcfe",
        "": "",
    }


def test_params_latin1(codec: ModuleType) -> None:
    pairs = [
        (b"SCRIPT_NAME", b"/x"),
        (b"HTTP_X", b"\xc3\xa5 \xe2\x82\xac"),
        (b"RAW", b"\xff\xfe"),
        (b"", b""),
        (b"SCRIPT_NAME", b"/later"),
    ]
    assert codec.params_latin1(pairs) == {
        "SCRIPT_NAME": "/later",
        "HTTP_X": "\xc3\xa5 \xe2\x82\xac",
        "RAW": "\xff\xfe",
        "": "",
    }


def test_params_latin1_is_lossless(codec: ModuleType) -> None:
    raw = bytes(range(256))
    ((name, value),) = codec.params_latin1({raw: raw}.items()).items()
    assert name == value
    assert value.encode("latin-1") == raw


def test_params_text_is_lossless(codec: ModuleType) -> None:
    raw = bytes(range(256))
    text = codec.params_text([(raw, raw)])
    ((name, value),) = text.items()
    assert name == value
    assert value.encode("utf-8", "surrogateescape") == raw


def test_params_text_accepts_what_encode_params_accepts(codec: ModuleType) -> None:
    pairs = iter([(bytearray(b"a"), b"b"), [b"c", bytearray(b"d")]])
    assert codec.params_text(pairs) == {"a": "b", "c": "d"}
    assert codec.params_text(()) == {}
    pairs = iter([(bytearray(b"a"), b"\xe9"), [b"c", bytearray(b"d")]])
    assert codec.params_latin1(pairs) == {"a": "\xe9", "c": "d"}
    assert codec.params_latin1(()) == {}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(b"a", "b")], "names and values must be bytes"),
        ([(b"a", memoryview(b"b"))], "names and values must be bytes"),
        ([b"ab"], r"name-value pairs must be \(name, value\) tuples"),
        ([(b"a", b"b", b"c")], r"name-value pairs must be \(name, value\) tuples"),
        (5, "'int' object is not iterable"),
    ],
)
@pytest.mark.parametrize("decoder", ["params_text", "params_latin1"])
def test_params_text_rejects_bad_pairs(
    codec: ModuleType, decoder: str, pairs: object, message: str
) -> None:
    with pytest.raises(TypeError, match=f"^{message}$"):
        getattr(codec, decoder)(pairs)
