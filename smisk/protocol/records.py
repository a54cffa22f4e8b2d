"""Record framing: header codec, an incremental reader and a writer.

Rules: bytes in, bytes-like out; no I/O. The reader accepts input split anywhere and many
records per chunk; the writer splits payloads over 65535 bytes into several records, padded to
8 bytes.
"""

from __future__ import annotations

import struct

from smisk.codec import frame_end, frame_records, parse_record_header, split_records
from smisk.protocol.constants import (
    HEADER_SIZE,
    MAX_CONTENT_LENGTH,
    PADDING_ALIGNMENT,
    VERSION,
    RecordType,
)
from smisk.protocol.errors import RemoteProtocolError

__all__ = [
    "Record",
    "RecordReader",
    "encode_record",
    "encode_stream",
    "end_parts",
    "pack_header",
    "unpack_header",
]

_HEADER = struct.Struct(">BBHHBx")
_PADDING = bytes(PADDING_ALIGNMENT)

Content = bytes | memoryview  # a record's content: large stream content is a read-only view
Record = tuple[int, int, Content]  # (record type, request id, content)

# Stream content (STDIN, DATA) from this size on is handed out as a memoryview of the chunk it
# arrived in instead of a copy, when such content makes up at least half of that chunk: a view
# keeps its whole chunk alive, so a chunk mostly made of other records is copied out instead.
ZERO_COPY_CONTENT = 4 * 1024
_VIEW_TYPES = frozenset((RecordType.STDIN, RecordType.DATA))


def pack_header(record_type: int, request_id: int, content_length: int, padding: int) -> bytes:
    """Return the 8-byte header of one record."""
    return _HEADER.pack(VERSION, record_type, request_id, content_length, padding)


def unpack_header(header: bytes) -> tuple[int, int, int, int, int]:
    """Return ``(version, type, request_id, content_length, padding_length)`` of an 8-byte header."""
    return _HEADER.unpack(header)


def _padding_for(length: int) -> int:
    return -length % PADDING_ALIGNMENT


def encode_record(record_type: int, request_id: int, content: Content = b"") -> bytes:
    """Frame ``content`` (at most 65535 bytes) as one padded record."""
    padding = -len(content) % PADDING_ALIGNMENT
    header = _HEADER.pack(VERSION, record_type, request_id, len(content), padding)
    return header + content + _PADDING[:padding]


# Payloads from this size on are framed without copying them: the header and padding go
# around a memoryview of the data, for a scatter-gather write (writelines / writev).
ZERO_COPY_THRESHOLD = 32 * 1024
_STEP = MAX_CONTENT_LENGTH - MAX_CONTENT_LENGTH % PADDING_ALIGNMENT  # 65528: aligned, no padding


def stream_parts(record_type: int, request_id: int, data: Content) -> list[bytes | memoryview]:
    """Frame ``data`` of any size as records of at most 65535 bytes (no terminator), as a list
    of buffers to write in order; large payloads are not copied."""
    if not data:
        return []  # an empty record would end the stream
    if len(data) < ZERO_COPY_THRESHOLD:
        return [frame_records(record_type, request_id, data)]
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(data), _STEP):
        chunk = view[start : start + _STEP]
        padding = _padding_for(len(chunk))
        parts.append(_HEADER.pack(VERSION, record_type, request_id, len(chunk), padding))
        parts.append(chunk)
        if padding:
            parts.append(_PADDING[:padding])
    return parts


def end_parts(
    request_id: int, data: Content, app_status: int, protocol_status: int, stderr_sent: bool
) -> list[bytes | memoryview]:
    """The end of a response: final STDOUT ``data``, the empty STDOUT (and, once STDERR was
    sent, STDERR) record and END_REQUEST. A small response is one buffer, framed in one step."""
    if len(data) < ZERO_COPY_THRESHOLD:
        return [frame_end(request_id, data, app_status, protocol_status, stderr_sent)]
    parts = stream_parts(RecordType.STDOUT, request_id, data)
    parts.append(frame_end(request_id, b"", app_status, protocol_status, stderr_sent))
    return parts


def encode_stream(record_type: int, request_id: int, data: bytes) -> bytes:
    """Frame ``data`` of any size as records of at most 65535 bytes each (no terminator)."""
    if len(data) <= MAX_CONTENT_LENGTH:
        return encode_record(record_type, request_id, data) if data else b""
    return b"".join(stream_parts(record_type, request_id, data))


class RecordReader:
    """Turns a byte stream into records; keeps an incomplete record buffered until it is whole.

    Whole records are sliced straight out of each chunk fed, large stream content as a view (see
    ``ZERO_COPY_CONTENT``); only the bytes of a record split over several chunks are gathered (as
    a list of pieces, joined once it is complete), so a large chunk is never copied as a whole
    and a trickling peer costs O(1) per chunk.
    """

    __slots__ = ("_error", "_needed", "_pending", "_pending_size")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the pieces of an incomplete record, in order
        self._pending_size = 0
        self._needed = HEADER_SIZE  # bytes the incomplete record needs to be parsed
        self._error: RemoteProtocolError | None = None

    @property
    def failed(self) -> RemoteProtocolError | None:
        """The error ``feed_until_error`` found after the records it returned, if any."""
        return self._error

    @property
    def buffered(self) -> int:
        """Number of bytes held that do not yet form a whole record."""
        return self._pending_size

    def feed(self, data: bytes) -> list[Record]:
        """Add ``data``; return every record now complete, in order.

        Raises ``RemoteProtocolError`` on a header with a version other than 1.
        """
        records = self.feed_until_error(data)
        if self._error is not None:
            raise self._error
        return records

    def feed_until_error(self, data: bytes) -> list[Record]:
        """Like ``feed``, but return the whole records before a bad header and leave its error
        in ``failed`` (raised by any later call): what a peer sent before breaking the
        protocol is handled the same however its bytes were split."""
        if self._error is not None:
            raise self._error
        records: list[Record] = []
        pos = self._complete_pending(data, records) if self._pending_size else 0
        if pos < 0 or self._error is not None:
            return records  # data went into the pending record, or its header was bad
        end = len(data)
        views = ZERO_COPY_CONTENT if type(data) is bytes and end >= ZERO_COPY_CONTENT else 0
        found, pos = split_records(data, pos, views)
        if views:
            found = _copy_if_sparse(found, end)
        if records:
            records += found
        else:
            records = found
        if end - pos >= HEADER_SIZE:  # split_records stopped at a bad or incomplete record
            version, _, _, length, padding = parse_record_header(data, pos)
            if version != VERSION:
                self._error = RemoteProtocolError(f"unsupported FastCGI version {version}")
                return records
            self._needed = HEADER_SIZE + length + padding
        if pos < end:
            self._pending.append(data[pos:])
            self._pending_size = end - pos
        return records

    def _complete_pending(self, data: bytes, records: list[Record]) -> int:
        """Top up the incomplete record from ``data``; append it to ``records`` once whole.

        Returns the offset in ``data`` after the record, or -1 when ``data`` ran out first.
        """
        pos = 0
        while True:
            take = min(self._needed - self._pending_size, len(data) - pos)
            if take:
                self._pending.append(data[pos : pos + take])
                self._pending_size += take
                pos += take
            if self._pending_size < self._needed:
                return -1
            record = b"".join(self._pending)
            version, record_type, request_id, length, padding = _HEADER.unpack_from(record)
            if version != VERSION:
                self._error = RemoteProtocolError(f"unsupported FastCGI version {version}")
                return -1
            self._needed = HEADER_SIZE + length + padding
            if len(record) == self._needed:
                records.append(
                    (record_type, request_id, record[HEADER_SIZE : HEADER_SIZE + length])
                )
                self._pending, self._pending_size, self._needed = [], 0, HEADER_SIZE
                return pos
            self._pending = [record]  # the header is whole: now wait for the content


def _copy_if_sparse(records: list[Record], chunk_size: int) -> list[Record]:
    """Copy viewed content out when it is less than half of its chunk (see ZERO_COPY_CONTENT)."""
    viewed = sum(len(content) for _, _, content in records if type(content) is memoryview)
    if viewed and viewed * 2 < chunk_size:
        return [(kind, rid, bytes(content)) for kind, rid, content in records]
    return records


def is_known_type(record_type: int) -> bool:
    """True when ``record_type`` is one FastCGI 1.0 defines."""
    return RecordType.BEGIN_REQUEST <= record_type <= RecordType.UNKNOWN_TYPE
