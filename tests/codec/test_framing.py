"""split_records / frame_records / frame_end against both twins: shared vectors."""

from __future__ import annotations

import array
from types import ModuleType

import pytest

STDIN, STDOUT, STDERR, END_REQUEST, DATA = 5, 6, 7, 3, 8


def record(record_type: int, request_id: int, content: bytes, padding: int = 0) -> bytes:
    head = bytes((1, record_type, request_id >> 8, request_id & 0xFF))
    head += bytes((len(content) >> 8, len(content) & 0xFF, padding, 0))
    return head + content + bytes(padding)


def as_bytes(records: list[tuple[int, int, object]]) -> list[tuple[int, int, str, bytes]]:
    """Records with their content's type named, so that views and copies are told apart."""
    return [(t, i, type(c).__name__, bytes(c)) for t, i, c in records]  # type: ignore[call-overload]


# -- split_records ----------------------------------------------------------------------------

STREAM = (
    record(1, 1, b"\x00\x01\x01\x00\x00\x00\x00\x00") + record(4, 1, b"ab", 6) + record(4, 1, b"")
)


def test_split_whole_records(codec: ModuleType) -> None:
    records, end = codec.split_records(STREAM)
    assert records == [(1, 1, b"\x00\x01\x01\x00\x00\x00\x00\x00"), (4, 1, b"ab"), (4, 1, b"")]
    assert end == len(STREAM)
    assert all(type(content) is bytes for _, _, content in records)


def test_split_nothing(codec: ModuleType) -> None:
    assert codec.split_records(b"") == ([], 0)
    assert codec.split_records(STREAM, len(STREAM)) == ([], len(STREAM))


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 10, 15])
def test_split_stops_at_an_incomplete_record(codec: ModuleType, cut: int) -> None:
    first = record(4, 1, b"ab", 6)  # 16 bytes: header, content, padding
    data = record(6, 2, b"x" * 8) + first[:cut]
    assert codec.split_records(data) == ([(6, 2, b"x" * 8)], 16)


def test_split_waits_for_the_padding(codec: ModuleType) -> None:
    data = record(4, 1, b"ab", 6)
    assert codec.split_records(data[:-1]) == ([], 0)
    assert codec.split_records(data) == ([(4, 1, b"ab")], 16)


def test_split_stops_at_a_bad_version(codec: ModuleType) -> None:
    bad = b"\x02" + record(6, 1, b"")[1:]
    data = record(6, 1, b"a", 7) + bad + record(6, 1, b"b", 7)
    assert codec.split_records(data) == ([(6, 1, b"a")], 16)


def test_split_from_an_offset(codec: ModuleType) -> None:
    data = b"junk" + record(6, 0xFFFF, b"abc", 5)
    assert codec.split_records(data, 4) == ([(6, 0xFFFF, b"abc")], len(data))
    assert codec.split_records(data, offset=4) == ([(6, 0xFFFF, b"abc")], len(data))


def test_split_largest_record(codec: ModuleType) -> None:
    data = record(STDIN, 1, b"z" * 65535, 255)
    assert as_bytes(codec.split_records(data)[0]) == [(STDIN, 1, "bytes", b"z" * 65535)]
    assert codec.split_records(data[:-1]) == ([], 0)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_split_copies_out_of_any_buffer(codec: ModuleType, kind: type) -> None:
    records, end = codec.split_records(kind(STREAM))
    assert as_bytes(records)[1] == (4, 1, "bytes", b"ab")
    assert end == len(STREAM)


def test_split_views_stream_content_from_view_from(codec: ModuleType) -> None:
    data = (
        record(STDIN, 1, b"i" * 16)
        + record(DATA, 1, b"d" * 24)
        + record(STDIN, 1, b"s" * 8)
        + record(STDOUT, 1, b"o" * 16)
    )
    records, _ = codec.split_records(data, 0, 16)
    assert as_bytes(records) == [
        (STDIN, 1, "memoryview", b"i" * 16),
        (DATA, 1, "memoryview", b"d" * 24),
        (STDIN, 1, "bytes", b"s" * 8),
        (STDOUT, 1, "bytes", b"o" * 16),
    ]
    assert records[0][2].obj is data  # type: ignore[union-attr]
    assert records[0][2].readonly  # type: ignore[union-attr]
    assert as_bytes(codec.split_records(data, view_from=0)[0])[0][2] == "bytes"
    assert as_bytes(codec.split_records(data, view_from=-5)[0])[0][2] == "bytes"


def test_split_casts_a_wide_memoryview_to_bytes(codec: ModuleType) -> None:
    raw = record(STDIN, 1, b"w" * 16)
    wide = memoryview(array.array("I", raw))
    records, end = codec.split_records(wide, 0, 8)
    assert as_bytes(records) == [(STDIN, 1, "memoryview", b"w" * 16)]
    assert end == 24


@pytest.mark.parametrize("offset", [-1, 5, 2**80, -(2**80)])
def test_split_offset_out_of_range(codec: ModuleType, offset: int) -> None:
    with pytest.raises(ValueError, match=r"^offset out of range$"):
        codec.split_records(b"1234", offset)


def test_split_argument_types(codec: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^data must be bytes, bytearray or memoryview$"):
        codec.split_records("text")
    with pytest.raises(TypeError, match=r"^offset must be an integer$"):
        codec.split_records(b"", 0.0)
    with pytest.raises(TypeError, match=r"^view_from must be an integer$"):
        codec.split_records(b"", 0, None)


# -- frame_records ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),
        (b"a", record(STDOUT, 1, b"a", 7)),
        (b"12345678", record(STDOUT, 1, b"12345678")),
        (b"123456789", record(STDOUT, 1, b"123456789", 7)),
        (b"x" * 65528, record(STDOUT, 1, b"x" * 65528)),
        (b"x" * 65529, record(STDOUT, 1, b"x" * 65528) + record(STDOUT, 1, b"x", 7)),
        (b"y" * 65535, record(STDOUT, 1, b"y" * 65528) + record(STDOUT, 1, b"y" * 7, 1)),
    ],
)
def test_frame_records(codec: ModuleType, data: bytes, expected: bytes) -> None:
    assert codec.frame_records(STDOUT, 1, data) == expected


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_frame_records_of_any_buffer(codec: ModuleType, kind: type) -> None:
    framed = codec.frame_records(STDERR, 0x1234, kind(b"abc"))
    assert type(framed) is bytes
    assert framed == record(STDERR, 0x1234, b"abc", 5)


def test_frame_a_wide_memoryview_by_its_bytes(codec: ModuleType) -> None:
    wide = memoryview(array.array("I", [1, 2]))
    assert codec.frame_records(STDOUT, 1, wide) == record(STDOUT, 1, wide.tobytes())


def test_framed_records_split_back(codec: ModuleType) -> None:
    data = bytes(range(256)) * 1000  # 256000 bytes: four records
    framed = codec.frame_records(STDOUT, 9, data)
    records, end = codec.split_records(framed)
    assert end == len(framed)
    assert [(t, i) for t, i, _ in records] == [(STDOUT, 9)] * 4
    assert b"".join(c for _, _, c in records) == data  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((256, 1, b""), ValueError, "record type out of range"),
        ((-1, 1, b""), ValueError, "record type out of range"),
        ((6, 65536, b""), ValueError, "request id out of range"),
        ((6, -1, b""), ValueError, "request id out of range"),
        ((6, 2**80, b""), ValueError, "request id out of range"),
        (("6", 1, b""), TypeError, "record type must be an integer"),
        ((6, 1.0, b""), TypeError, "request id must be an integer"),
        ((6, 1, "text"), TypeError, "data must be bytes, bytearray or memoryview"),
    ],
)
def test_frame_records_rejects(
    codec: ModuleType, args: tuple[object, ...], error: type, message: str
) -> None:
    with pytest.raises(error, match=f"^{message}$"):
        codec.frame_records(*args)


# -- frame_end ---------------------------------------------------------------------------------


def end_body(app_status: int, protocol_status: int) -> bytes:
    return app_status.to_bytes(4, "big") + bytes((protocol_status, 0, 0, 0))


def test_frame_end_of_a_small_response(codec: ModuleType) -> None:
    expected = (
        record(STDOUT, 1, b"Status: 200\r\n\r\nhi", 7)
        + record(STDOUT, 1, b"")
        + record(END_REQUEST, 1, end_body(0, 0))
    )
    assert codec.frame_end(1, b"Status: 200\r\n\r\nhi") == expected


def test_frame_end_without_data(codec: ModuleType) -> None:
    assert codec.frame_end(7) == record(STDOUT, 7, b"") + record(END_REQUEST, 7, end_body(0, 0))
    assert codec.frame_end(7, bytearray()) == codec.frame_end(7, b"", 0, 0, False)


def test_frame_end_after_stderr(codec: ModuleType) -> None:
    expected = (
        record(STDOUT, 2, b"") + record(STDERR, 2, b"") + record(END_REQUEST, 2, end_body(5, 3))
    )
    assert codec.frame_end(2, b"", 5, 3, True) == expected
    assert codec.frame_end(2, stderr_sent=1, protocol_status=3, app_status=5) == expected


@pytest.mark.parametrize(
    ("app_status", "field"),
    [(0, 0), (1, 1), (-1, 0xFFFFFFFF), (2**32 + 5, 5), (-(2**70) - 1, 0xFFFFFFFF), (True, 1)],
)
def test_frame_end_wraps_the_app_status(codec: ModuleType, app_status: int, field: int) -> None:
    assert codec.frame_end(1, b"", app_status)[-8:] == end_body(field, 0)


def test_frame_end_of_a_large_response(codec: ModuleType) -> None:
    data = b"L" * 70000
    expected = codec.frame_records(STDOUT, 3, data) + codec.frame_end(3)
    assert codec.frame_end(3, memoryview(data)) == expected


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((65536,), ValueError, "request id out of range"),
        (("1",), TypeError, "request id must be an integer"),
        ((1, "x"), TypeError, "data must be bytes, bytearray or memoryview"),
        ((1, b"", 0.5), TypeError, "app status must be an integer"),
        ((1, b"", 0, 256), ValueError, "protocol status out of range"),
        ((1, b"", 0, -1), ValueError, "protocol status out of range"),
        ((1, b"", 0, None), TypeError, "protocol status must be an integer"),
    ],
)
def test_frame_end_rejects(
    codec: ModuleType, args: tuple[object, ...], error: type, message: str
) -> None:
    with pytest.raises(error, match=f"^{message}$"):
        codec.frame_end(*args)


# -- name-value lengths that must not wrap (the libfcgi ReadParams overflow class) -------------


def long_length(length: int) -> bytes:
    return (length | 0x80000000).to_bytes(4, "big")


@pytest.mark.parametrize(
    "raw",
    [
        long_length(0x7FFFFFFF) + long_length(0x7FFFFFFF) + b"x" * 8,  # the sum wraps 32 bits
        long_length(0x7FFFFFF0) + b"\x20" + b"x" * 32,  # name + value wraps a signed int
        b"\x01" + long_length(0x7FFFFFFF) + b"n",  # a value running far past the record
        long_length(0xFFFFFFFF) + b"\x00",  # the high bit only flags the 4-byte form
    ],
)
def test_decode_params_lengths_never_wrap(codec: ModuleType, raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"^name-value pair longer than its stream$"):
        codec.decode_params(raw)


def test_decode_params_high_bit_is_only_the_form(codec: ModuleType) -> None:
    assert codec.decode_params(long_length(1) + b"\x80\x00\x00\x02nvv") == [(b"n", b"vv")]
