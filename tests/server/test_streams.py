"""BodyStream: what the handler reads is bytes, whatever the connection fed it."""

from __future__ import annotations

import asyncio

import pytest

from smisk.server.streams import BodyStream, ClientGone


def _stream() -> tuple[BodyStream, list[int]]:
    released: list[int] = []
    return BodyStream(released.append), released


async def test_read_returns_bytes_for_fed_views_and_releases_credit() -> None:
    stream, released = _stream()
    chunk = b"0123456789" * 10
    stream.feed(memoryview(chunk)[10:60])
    stream.feed(b"tail")
    first = await stream.read(20)
    assert type(first) is bytes and first == chunk[10:30]
    rest = await stream.read(100)  # what has arrived, across chunks, up to the size asked
    assert type(rest) is bytes and rest == chunk[30:60] + b"tail"
    assert released == [20, 34] and stream.buffered == 0


async def test_partial_reads_of_a_bytes_chunk_return_every_byte_once() -> None:
    stream, released = _stream()
    body = bytes(range(256)) * 40
    stream.feed(body)
    stream.feed_eof()
    pieces = []
    while piece := await stream.read(1000):
        assert type(piece) is bytes
        pieces.append(piece)
    assert b"".join(pieces) == body and [len(p) for p in pieces][-1] == len(body) % 1000
    assert sum(released) == len(body) and stream.at_eof


async def test_read_all_joins_views_and_bytes_as_they_arrive() -> None:
    stream, released = _stream()
    chunk = bytes(range(256)) * 64
    reader = asyncio.ensure_future(stream.read_all())
    stream.feed(memoryview(chunk)[:8192])
    await asyncio.sleep(0)
    stream.feed(b"middle")
    stream.feed(memoryview(chunk)[8192:])
    await asyncio.sleep(0)
    assert not reader.done()
    stream.feed_eof()
    body = await reader
    assert type(body) is bytes and body == chunk[:8192] + b"middle" + chunk[8192:]
    assert sum(released) == len(body) and stream.buffered == 0


async def test_a_read_spanning_chunks_stops_at_its_size() -> None:
    stream, released = _stream()
    for piece in (b"aaaa", memoryview(b"bbbbbbbb"), b"cccc"):
        stream.feed(piece)
    assert await stream.read(10) == b"aaaabbbbbb"
    assert await stream.read(3) == b"bbc"
    assert await stream.read(100) == b"ccc"
    assert released == [10, 3, 3]


async def test_read_all_after_a_partial_read() -> None:
    stream, _ = _stream()
    stream.feed(memoryview(b"abcdefgh"))
    stream.feed_eof()
    assert await stream.read(3) == b"abc"
    assert await stream.read_all() == b"defgh"
    assert await stream.read_all() == b""


async def test_read_all_raises_when_the_client_goes_away() -> None:
    stream, _ = _stream()
    reader = asyncio.ensure_future(stream.read_all())
    stream.feed(b"partial")
    await asyncio.sleep(0)
    stream.fail(ClientGone("gone"))
    with pytest.raises(ClientGone):
        await reader  # never a partial body
