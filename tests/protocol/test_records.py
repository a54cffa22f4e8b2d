"""Record framing: header codec, the incremental reader (three ways) and the splitting writer."""

from __future__ import annotations

import pytest

from smisk.protocol import RecordReader, RecordType, RemoteProtocolError
from smisk.protocol.records import (
    ZERO_COPY_CONTENT,
    encode_record,
    encode_stream,
    pack_header,
    unpack_header,
)

from .helpers import Record, parse_records, record

# -- header codec -------------------------------------------------------------------------------


def test_pack_header_layout() -> None:
    header = pack_header(RecordType.STDOUT, 0x1234, 0xBEEF, 0xAB)
    assert header == b"\x01\x06\x12\x34\xbe\xef\xab\x00"


@pytest.mark.parametrize(
    "fields",
    [(RecordType.BEGIN_REQUEST, 1, 8, 0), (RecordType.STDIN, 65535, 65535, 255), (42, 0, 0, 7)],
)
def test_header_round_trip(fields: tuple[int, int, int, int]) -> None:
    assert unpack_header(pack_header(*fields)) == (1, *fields)


def test_unpack_header_ignores_reserved_byte() -> None:
    assert unpack_header(b"\x01\x05\x00\x02\x00\x03\x05\xff") == (1, 5, 2, 3, 5)


# -- reader, three ways -------------------------------------------------------------------------

# The start of a record that must stay buffered after every vector.
TAIL_RECORD = record(RecordType.STDIN, 9, b"tail!", padding=3)
TAIL_CUTS = [1, 7, 8, 9, 12, 13, len(TAIL_RECORD) - 1]  # in the header, content and padding


def _vector(*records: tuple[int, int, bytes, int]) -> tuple[bytes, list[Record]]:
    raw = b"".join(record(t, i, c, p) for t, i, c, p in records)
    return raw, [(t, i, c) for t, i, c, _ in records]


READER_VECTORS = {
    "empty input": (b"", []),
    "length 0": _vector((RecordType.STDIN, 1, b"", 0)),
    "length 1 padded": _vector((RecordType.STDIN, 1, b"x", 7)),
    "length 1 unpadded": _vector((RecordType.STDIN, 1, b"x", 0)),
    "length 7": _vector((RecordType.PARAMS, 2, b"1234567", 1)),
    "length 8": _vector((RecordType.PARAMS, 2, b"12345678", 0)),
    "length 65535": _vector((RecordType.STDIN, 3, bytes(range(256)) * 255 + b"z" * 255, 1)),
    "padding 255": _vector((RecordType.DATA, 4, b"abc", 255)),
    "id 65535": _vector((RecordType.ABORT_REQUEST, 65535, b"", 0)),
    "unknown type": _vector((42, 7, b"?", 0)),
    "many per chunk": _vector(
        (RecordType.BEGIN_REQUEST, 1, b"\x00\x01\x01\x00\x00\x00\x00\x00", 0),
        (RecordType.PARAMS, 1, b"\x01\x01ab", 4),
        (RecordType.PARAMS, 1, b"", 0),
        (RecordType.STDIN, 1, b"body", 0),
        (RecordType.STDIN, 1, b"", 200),
        (RecordType.GET_VALUES, 0, b"", 0),
    ),
}


def _bytewise(reader: RecordReader, raw: bytes) -> list[Record]:
    out: list[Record] = []
    for i in range(len(raw)):
        out += reader.feed(raw[i : i + 1])
    return out


@pytest.mark.parametrize("name", READER_VECTORS)
def test_reader_whole(name: str) -> None:
    raw, expected = READER_VECTORS[name]
    reader = RecordReader()
    assert reader.feed(raw) == expected
    assert reader.buffered == 0


@pytest.mark.parametrize("name", READER_VECTORS)
def test_reader_one_byte_at_a_time(name: str) -> None:
    raw, expected = READER_VECTORS[name]
    reader = RecordReader()
    got = _bytewise(reader, raw)
    assert got == expected
    assert all(type(content) is bytes for _, _, content in got)
    assert reader.buffered == 0


@pytest.mark.parametrize("cut", TAIL_CUTS)
@pytest.mark.parametrize("name", READER_VECTORS)
def test_reader_keeps_trailing_partial_record(name: str, cut: int) -> None:
    raw, expected = READER_VECTORS[name]
    reader = RecordReader()
    assert reader.feed(raw + TAIL_RECORD[:cut]) == expected
    assert reader.buffered == cut
    assert reader.feed(TAIL_RECORD[cut:]) == [(RecordType.STDIN, 9, b"tail!")]
    assert reader.buffered == 0


def test_reader_records_split_across_chunks_at_every_offset() -> None:
    raw, expected = READER_VECTORS["many per chunk"]
    for cut in range(len(raw) + 1):
        reader = RecordReader()
        assert reader.feed(raw[:cut]) + reader.feed(raw[cut:]) == expected


def test_reader_empty_feed_changes_nothing() -> None:
    reader = RecordReader()
    assert reader.feed(TAIL_RECORD[:3]) == []
    assert reader.feed(b"") == []
    assert reader.buffered == 3


@pytest.mark.parametrize("version", [0, 2, 255])
def test_reader_rejects_other_versions(version: int) -> None:
    bad = bytes((version,)) + record(RecordType.STDIN, 1, b"x")[1:]
    with pytest.raises(RemoteProtocolError):
        RecordReader().feed(bad)
    with pytest.raises(RemoteProtocolError):
        _bytewise(RecordReader(), bad)
    with pytest.raises(RemoteProtocolError):  # after good records, in the same chunk
        RecordReader().feed(READER_VECTORS["many per chunk"][0] + bad)


def test_reader_rejects_bad_version_as_soon_as_header_is_whole() -> None:
    bad = b"\x02" + record(RecordType.STDIN, 1, b"x" * 100)[1:]
    reader = RecordReader()
    assert reader.feed(bad[:7]) == []
    with pytest.raises(RemoteProtocolError):
        reader.feed(bad[7:8])


# -- zero-copy stream content -------------------------------------------------------------------

BIG = bytes(range(256)) * (ZERO_COPY_CONTENT // 256)  # exactly ZERO_COPY_CONTENT bytes


def test_reader_hands_large_stdin_out_as_views_of_the_chunk() -> None:
    chunk = record(RecordType.STDIN, 1, BIG) + record(RecordType.DATA, 1, BIG + b"!", padding=7)
    (stdin_type, _, stdin), (data_type, _, data) = RecordReader().feed(chunk)
    assert (stdin_type, data_type) == (RecordType.STDIN, RecordType.DATA)
    assert isinstance(stdin, memoryview) and isinstance(data, memoryview)
    assert stdin.obj is chunk and data.obj is chunk  # not copied
    assert stdin.readonly
    assert (bytes(stdin), bytes(data)) == (BIG, BIG + b"!")


def test_reader_copies_small_content_and_other_record_types() -> None:
    chunk = (
        record(RecordType.PARAMS, 1, BIG)
        + record(RecordType.STDIN, 1, BIG[:-1])
        + record(RecordType.STDIN, 1, BIG * 4)
    )
    contents = [content for _, _, content in RecordReader().feed(chunk)]
    assert [type(c) for c in contents] == [bytes, bytes, memoryview]
    assert contents == [BIG, BIG[:-1], BIG * 4]


def test_reader_copies_stream_content_out_of_a_chunk_mostly_made_of_other_records() -> None:
    # A view keeps its whole chunk alive: a chunk where large stream content is less than half
    # would let a peer pin far more memory than the body bytes flow control counts.
    filler = record(RecordType.STDIN, 2, b"x" * 4000) * 2  # small records: copied
    chunk = record(RecordType.STDIN, 1, BIG) + filler
    contents = [content for _, _, content in RecordReader().feed(chunk)]
    assert all(type(c) is bytes for c in contents)
    assert contents[0] == BIG


def test_reader_never_views_a_mutable_chunk() -> None:
    chunk = bytearray(record(RecordType.STDIN, 1, BIG))
    ((_, _, content),) = RecordReader().feed(chunk)  # type: ignore[arg-type]
    assert type(content) is not memoryview
    chunk[8:16] = b"\0" * 8
    assert content == BIG


def test_reader_joins_a_large_record_split_over_chunks_into_bytes() -> None:
    raw = record(RecordType.STDIN, 1, BIG * 4)
    reader = RecordReader()
    assert reader.feed(raw[:1000]) == []
    ((_, _, content),) = reader.feed(raw[1000:])
    assert type(content) is bytes and content == BIG * 4


# -- writer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 65535])
def test_encode_record_pads_to_eight(length: int) -> None:
    content = b"\x5a" * length
    raw = encode_record(RecordType.STDOUT, 3, content)
    assert len(raw) % 8 == 0
    assert len(raw) - 8 - length < 8
    assert parse_records(raw) == [(RecordType.STDOUT, 3, content)]


@pytest.mark.parametrize("length", [1, 65535, 65536, 200000])
def test_encode_stream_splits_and_reassembles(length: int) -> None:
    payload = bytes(i * 7 % 251 for i in range(length))
    records = parse_records(encode_stream(RecordType.STDOUT, 513, payload))
    assert len(records) <= -(-length // 65528)  # no needlessly small records
    assert all(t == RecordType.STDOUT and i == 513 and c for t, i, c in records)
    assert b"".join(c for _, _, c in records) == payload


def test_encode_stream_of_nothing_is_no_record() -> None:
    # The writer frames data "without terminator": an empty record would end the stream early.
    assert encode_stream(RecordType.STDOUT, 1, b"") == b""
