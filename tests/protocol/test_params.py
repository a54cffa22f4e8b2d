"""Name-value pairs: the codec on its own, then PARAMS streams through the connection."""

from __future__ import annotations

import pytest

from smisk.codec import decode_params, encode_params
from smisk.protocol import FastCGIConnection, RemoteProtocolError, RequestReceived, Role, StdinEnd

from .helpers import (
    begin,
    connection_three_ways,
    params,
    params_chunks,
    remote_error_three_ways,
)

Pairs = list[tuple[bytes, bytes]]


def _long(length: int) -> bytes:
    return (length | 0x80000000).to_bytes(4, "big")


# -- codec vectors: (pairs, exact encoding) -----------------------------------------------------

N127, N128, N70000 = b"n" * 127, b"N" * 128, bytes(i % 256 for i in range(70000))
CODEC_VECTORS: dict[str, tuple[Pairs, bytes]] = {
    "nothing": ([], b""),
    "empty name and value": ([(b"", b"")], b"\x00\x00"),
    "empty value": ([(b"HTTPS", b"")], b"\x05\x00HTTPS"),
    "1-1": ([(b"A", b"bc")], b"\x01\x02Abc"),
    "127-127": ([(N127, N127)], b"\x7f\x7f" + N127 + N127),
    "1-4 at 128": ([(b"X", N128)], b"\x01" + _long(128) + b"X" + N128),
    "4-1 at 128": ([(N128, b"v")], _long(128) + b"\x01" + N128 + b"v"),
    "4-4 at 128": ([(N128, N128)], _long(128) * 2 + N128 * 2),
    "4-4 at 70000": ([(N70000, N70000)], _long(70000) * 2 + N70000 * 2),
    "duplicates in order": (
        [(b"H", b"1"), (b"H", b"2"), (b"G", b""), (b"H", b"1")],
        b"\x01\x01H1\x01\x01H2\x01\x00G\x01\x01H1",
    ),
    "binary bytes": ([(b"\x00\xff", b"\x80\n")], b"\x02\x02\x00\xff\x80\n"),
}


@pytest.mark.parametrize("name", CODEC_VECTORS)
def test_encode_params(name: str) -> None:
    pairs, raw = CODEC_VECTORS[name]
    assert encode_params(pairs) == raw


@pytest.mark.parametrize("name", CODEC_VECTORS)
def test_decode_params(name: str) -> None:
    pairs, raw = CODEC_VECTORS[name]
    decoded = decode_params(raw)
    assert decoded == pairs
    assert all(type(n) is bytes and type(v) is bytes for n, v in decoded)


def test_decode_accepts_long_form_for_short_lengths() -> None:
    assert decode_params(_long(1) + _long(0) + b"x") == [(b"x", b"")]
    assert decode_params(_long(3) + b"\x01abcd") == [(b"abc", b"d")]


def test_decode_ignores_the_long_form_flag_bit_only() -> None:
    # 0xFFFFFFFF is 0x7FFFFFFF once the flag bit is masked: far more than the stream holds.
    with pytest.raises(ValueError):
        decode_params(b"\xff\xff\xff\xff\x00" + b"x" * 16)


def _pair_boundaries(pairs: Pairs) -> dict[int, Pairs]:
    """Offsets where an encoding of ``pairs`` may legally end, with the pairs decoded so far."""
    ends, pos = {0: []}, 0
    for i, pair in enumerate(pairs):
        pos += len(encode_params([pair]))
        ends[pos] = pairs[: i + 1]
    return ends


@pytest.mark.parametrize("name", ["1-1", "1-4 at 128", "4-4 at 128", "duplicates in order"])
def test_decode_truncated_raises_never_partial(name: str) -> None:
    pairs, raw = CODEC_VECTORS[name]
    boundaries = _pair_boundaries(pairs)
    for cut in range(len(raw)):
        if cut in boundaries:
            assert decode_params(raw[:cut]) == boundaries[cut]
        else:
            with pytest.raises(ValueError):
                decode_params(raw[:cut])


@pytest.mark.parametrize(
    "raw",
    [
        b"\x05\x00abcd",  # name one byte short
        b"\x01\x05avvvv",  # value one byte short
        b"\x01" + _long(0x7FFFFFFF) + b"a",  # value length far past the end
        _long(0x7FFFFFFF) + b"\x00",  # name length far past the end
        b"\x80\x00\x00",  # long length cut short
        b"\x01",  # value length missing
    ],
)
def test_decode_over_long_raises(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_params(raw)


# -- PARAMS through the connection --------------------------------------------------------------

STRADDLE: Pairs = [(b"SHORT", b"1"), (N128, b"x" * 300), (b"LAST", b"")]
STRADDLE_RAW = encode_params(STRADDLE)
# Offsets inside STRADDLE_RAW: in the 1-byte lengths, in the 4-byte length (after 1, 2, 3 of its
# bytes), in the long name, in the value and at the boundary between pairs.
_SECOND = len(encode_params(STRADDLE[:1]))
STRADDLE_CUTS = [1, 3, _SECOND - 1, _SECOND, _SECOND + 1, _SECOND + 2, _SECOND + 3, _SECOND + 6]
STRADDLE_CUTS += [_SECOND + 8 + 5, _SECOND + 8 + 128 + 77, len(STRADDLE_RAW) - 1]


@pytest.mark.parametrize("cut", STRADDLE_CUTS)
def test_pair_straddling_two_params_records(cut: int) -> None:
    raw = begin(1) + params_chunks(1, STRADDLE_RAW, [cut])
    events, out = connection_three_ways(raw)
    assert events == [RequestReceived(1, Role.RESPONDER, False, STRADDLE)]
    assert out == []


def test_params_split_into_one_byte_records() -> None:
    raw = begin(1) + params_chunks(1, STRADDLE_RAW, range(1, len(STRADDLE_RAW)))
    events = FastCGIConnection().receive_data(raw)
    assert events == [RequestReceived(1, Role.RESPONDER, False, STRADDLE)]


def test_params_over_64k_across_records() -> None:
    pairs = [(b"HTTP_X_BIG", N70000), (N70000, b"v"), (b"AFTER", b"ok")]
    events, _ = connection_three_ways(begin(5, keep_conn=True) + params(5, pairs))
    assert events == [RequestReceived(5, Role.RESPONDER, True, pairs)]


def test_duplicate_names_kept_in_order() -> None:
    pairs = CODEC_VECTORS["duplicates in order"][0]
    events, _ = connection_three_ways(begin(2, Role.AUTHORIZER) + params(2, pairs))
    assert events == [RequestReceived(2, Role.AUTHORIZER, False, pairs), StdinEnd(2)]


def test_no_params_at_all() -> None:
    events, _ = connection_three_ways(begin(1) + params(1, []))
    assert events == [RequestReceived(1, Role.RESPONDER, False, [])]


@pytest.mark.parametrize(
    "raw",
    [
        b"\x05\x00abcd",  # truncated name
        b"\x01\x05avvvv",  # truncated value
        b"\x01\x01ab\x03",  # the next pair's value length missing
        b"\x01\x01ab\x83\x00",  # the next pair's long length cut short
        b"\x01" + _long(0x7FFFFFFF) + b"a" * 40,  # over-long value
    ],
)
def test_malformed_params_are_a_remote_error(raw: bytes) -> None:
    remote_error_three_ways(begin(1) + params_chunks(1, raw, [len(raw) // 2]))


def test_malformed_params_give_no_partial_request() -> None:
    conn = FastCGIConnection()
    assert conn.receive_data(begin(1) + params(1, [(b"OK", b"1")], end=False)) == []
    truncated = params_chunks(1, b"\x01\x01ab\x05\x00abc", [])
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(truncated)
    assert conn.data_to_send() == b""
