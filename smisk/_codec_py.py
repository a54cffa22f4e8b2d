"""Pure-Python codecs: the reference twin of the C extension ``smisk._codec``.

Rules: no I/O, no imports beyond the standard library. Every function here has a C twin that must
give identical results, raise the same exception types and messages, and return the very input
object when nothing had to change. Text (``str``) input is processed as its UTF-8 bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import time
from collections.abc import Iterable
from typing import AnyStr

__all__ = [
    "decode_params",
    "decompose_query",
    "encode_params",
    "frame_end",
    "frame_records",
    "pack",
    "params_latin1",
    "params_text",
    "parse_record_header",
    "read_request_head",
    "split_records",
    "uid",
    "url_decode",
    "url_encode",
    "url_escape",
    "url_unescape",
    "xml_escape",
    "xml_unescape",
]

# --- FastCGI name-value pairs and record headers ---------------------------------------------

_SHORT_LENGTH_MAX = 127  # FastCGI: lengths up to 127 fit in one byte, larger ones take four.
_LONG_LENGTH_MASK = 0x7FFFFFFF  # FastCGI: the top bit of a 4-byte length only flags the form.
_HEADER = struct.Struct(">BBHHBx")  # FastCGI record header; the trailing byte is reserved.

Buffer = bytes | bytearray | memoryview


def _check_buffer(data: object) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("data must be bytes, bytearray or memoryview")


def _read_length(data: Buffer, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ValueError("truncated name-value pair length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if pos + 4 > len(data):
        raise ValueError("truncated name-value pair length")
    length = int.from_bytes(data[pos : pos + 4], "big") & _LONG_LENGTH_MASK
    return length, pos + 4


def decode_params(data: Buffer) -> list[tuple[bytes, bytes]]:
    """Decode a complete FastCGI name-value pair stream into ``(name, value)`` pairs, in order.

    Raises ``ValueError`` when a length runs past the end of ``data``.
    """
    _check_buffer(data)
    pairs: list[tuple[bytes, bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        name_length, pos = _read_length(data, pos)
        value_length, pos = _read_length(data, pos)
        value_start = pos + name_length
        value_end = value_start + value_length
        if value_end > end:
            raise ValueError("name-value pair longer than its stream")
        pairs.append((bytes(data[pos:value_start]), bytes(data[value_start:value_end])))
        pos = value_end
    return pairs


def _encode_length(length: int) -> bytes:
    if length <= _SHORT_LENGTH_MAX:
        return bytes((length,))
    if length > _LONG_LENGTH_MASK:
        raise ValueError("name-value pair too long")
    return (length | 0x80000000).to_bytes(4, "big")


def _check_pair(pair: object) -> tuple[bytes | bytearray, bytes | bytearray]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError("name-value pairs must be (name, value) tuples")
    name, value = pair
    if not isinstance(name, bytes | bytearray) or not isinstance(value, bytes | bytearray):
        raise TypeError("names and values must be bytes")
    return name, value


def encode_params(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Encode ``(name, value)`` byte pairs as a FastCGI name-value pair stream."""
    parts: list[bytes | bytearray] = []
    for pair in pairs:
        name, value = _check_pair(pair)
        parts += (_encode_length(len(name)), _encode_length(len(value)), name, value)
    return b"".join(parts)


def params_text(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ``(name, value)`` pairs as a dict of text: UTF-8, undecodable bytes kept as
    surrogates (``surrogateescape``: nothing is lost); a later duplicate name wins."""
    return _decoded_params(pairs, "utf-8", "surrogateescape")


def params_latin1(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ``(name, value)`` pairs as a dict of latin-1 text, one character per byte (PEP 3333's
    "bytes as str": nothing is lost); a later duplicate name wins."""
    return _decoded_params(pairs, "latin-1", "strict")


def _decoded_params(
    pairs: Iterable[tuple[bytes, bytes]], encoding: str, errors: str
) -> dict[str, str]:
    text: dict[str, str] = {}
    name: bytes | bytearray
    value: bytes | bytearray
    for pair in pairs:
        if type(pair) is tuple and len(pair) == 2 and type(pair[0]) is type(pair[1]) is bytes:
            name, value = pair  # what the protocol hands over, checked without a call
        else:
            name, value = _check_pair(pair)
        text[name.decode(encoding, errors)] = value.decode(encoding, errors)
    return text


def parse_record_header(data: Buffer, offset: int = 0) -> tuple[int, int, int, int, int]:
    """Return ``(version, type, request_id, content_length, padding_length)`` of the 8-byte
    FastCGI record header that starts at ``offset`` in ``data``."""
    _check_buffer(data)
    if not isinstance(offset, int):
        raise TypeError("offset must be an integer")
    if offset < 0 or len(data) - offset < _HEADER.size:
        raise ValueError("record header needs 8 bytes")
    header: tuple[int, int, int, int, int] = _HEADER.unpack_from(data, offset)
    return header


# --- FastCGI record framing -------------------------------------------------------------------

_VERSION = 1  # The only FastCGI version; a header with another one stops split_records.
_HEADER_SIZE = 8
_STDOUT, _STDERR, _END_REQUEST = 6, 7, 3
_VIEW_TYPES = (5, 8)  # STDIN and DATA: the stream content split_records may hand out as views
_RECORD_STEP = 65528  # the largest 8-byte aligned content length: full records need no padding
_PADDING = bytes(8)
_TYPE_MAX, _ID_MAX, _STATUS_MAX = 0xFF, 0xFFFF, 0xFF  # widths of the header and body fields
_APP_STATUS_MASK = 0xFFFFFFFF  # appStatus is 32 bits; larger or negative values wrap
# The end of a response: empty STDOUT (and STDERR) record headers, END_REQUEST and its body.
_END = struct.Struct(">" + "BBHHBx" * 2 + "IB3x")
_END_AFTER_STDERR = struct.Struct(">" + "BBHHBx" * 3 + "IB3x")

Record = tuple[int, int, bytes | memoryview]


def _check_field(value: object, limit: int, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an integer")
    if not 0 <= value <= limit:
        raise ValueError(f"{what} out of range")
    return value


def _byte_view(data: Buffer) -> Buffer:
    """``data`` indexable by byte: a memoryview of another item format is cast to bytes."""
    if isinstance(data, memoryview) and data.format != "B":
        return data.cast("B")
    return data


def split_records(data: Buffer, offset: int = 0, view_from: int = 0) -> tuple[list[Record], int]:
    """Slice the whole records out of ``data`` from ``offset``: ``([(type, request_id, content),
    ...], end)`` where ``end`` is the offset after the last whole record.

    Stops at an incomplete record or at a header whose version is not 1 (the caller looks at
    what is left). Content is bytes; STDIN and DATA content of ``view_from`` bytes or more
    (``view_from`` > 0) is a memoryview of ``data`` instead of a copy.
    """
    _check_buffer(data)
    if not isinstance(offset, int):
        raise TypeError("offset must be an integer")
    if not isinstance(view_from, int):
        raise TypeError("view_from must be an integer")
    data = _byte_view(data)
    end = len(data)
    if not 0 <= offset <= end:
        raise ValueError("offset out of range")
    view = memoryview(data) if view_from > 0 else None
    records: list[Record] = []
    pos, unpack = offset, _HEADER.unpack_from
    while end - pos >= _HEADER_SIZE:
        version, record_type, request_id, length, padding = unpack(data, pos)
        start = pos + _HEADER_SIZE
        if version != _VERSION or start + length + padding > end:
            break
        if view is not None and length >= view_from and record_type in _VIEW_TYPES:
            content: bytes | memoryview = view[start : start + length]
        else:
            content = bytes(data[start : start + length])
        records.append((record_type, request_id, content))
        pos = start + length + padding
    return records, pos


_BEGIN_REQUEST, _PARAMS, _STDIN = 1, 4, 5
_RESPONDER = 1

RequestHead = tuple[int, int, list[tuple[bytes, bytes]], bool]


def read_request_head(
    data: Buffer, max_params_bytes: int, max_params_count: int
) -> RequestHead | None:
    """The opening of a responder request, when ``data`` is exactly that: ``(request_id, flags,
    params, input_done)``.

    ``data`` must hold a BEGIN_REQUEST for the responder role (request id above 0), its PARAMS
    records up to the empty one that ends them, optionally the empty STDIN record of a request
    without a body (``input_done``), all for that one request id, and nothing more. ``flags`` is
    the BEGIN_REQUEST flags byte; ``params`` the decoded name-value pairs. Anything else gives
    None: other records or ids, bytes cut elsewhere, a header or padding that does not fit,
    malformed pairs, or PARAMS over ``max_params_bytes`` (content bytes) or ``max_params_count``
    (pairs). The caller then takes the general path, which says what is wrong.
    """
    _check_buffer(data)
    if not isinstance(max_params_bytes, int) or not isinstance(max_params_count, int):
        raise TypeError("limits must be integers")
    data = _byte_view(data)
    end, unpack = len(data), _HEADER.unpack_from
    if end < 2 * _HEADER_SIZE:
        return None
    version, record_type, request_id, length, padding = unpack(data, 0)
    if (
        version != _VERSION
        or record_type != _BEGIN_REQUEST
        or request_id == 0
        or length != _HEADER_SIZE
        or padding > end - 2 * _HEADER_SIZE
        or (data[8] << 8 | data[9]) != _RESPONDER
    ):
        return None
    flags, pos = data[10], 2 * _HEADER_SIZE + padding
    chunks: list[bytes] = []
    size = 0
    while True:  # the PARAMS stream, up to its empty record
        if end - pos < _HEADER_SIZE:
            return None
        version, record_type, rid, length, padding = unpack(data, pos)
        start = pos + _HEADER_SIZE
        if (
            version != _VERSION
            or record_type != _PARAMS
            or rid != request_id
            or length + padding > end - start
        ):
            return None
        pos = start + length + padding
        if not length:
            break
        size += length
        if size > max_params_bytes:
            return None
        chunks.append(bytes(data[start : start + length]))
    input_done = pos < end
    if input_done:  # nothing but the empty STDIN record may follow
        if end - pos < _HEADER_SIZE:
            return None
        version, record_type, rid, length, padding = unpack(data, pos)
        if (
            version != _VERSION
            or record_type != _STDIN
            or rid != request_id
            or length != 0
            or padding != end - pos - _HEADER_SIZE
        ):
            return None
    try:
        params = decode_params(b"".join(chunks))
    except ValueError:
        return None
    if len(params) > max_params_count:
        return None
    return request_id, flags, params, input_done


def _frame(record_type: int, request_id: int, data: bytes, parts: list[bytes]) -> None:
    """Append ``data`` framed as records of at most 65528 bytes (none for empty data)."""
    for start in range(0, len(data), _RECORD_STEP):
        chunk = data[start : start + _RECORD_STEP]
        padding = -len(chunk) % 8
        parts += (
            _HEADER.pack(_VERSION, record_type, request_id, len(chunk), padding),
            chunk,
            _PADDING[:padding],
        )


def _raw(data: Buffer) -> bytes:
    _check_buffer(data)
    return data if type(data) is bytes else bytes(data)


def frame_records(record_type: int, request_id: int, data: Buffer) -> bytes:
    """Frame ``data`` of any size as records of at most 65535 bytes, each padded to 8 bytes.

    Empty ``data`` gives no record at all (an empty record would end the stream).
    """
    _check_field(record_type, _TYPE_MAX, "record type")
    _check_field(request_id, _ID_MAX, "request id")
    parts: list[bytes] = []
    _frame(record_type, request_id, _raw(data), parts)
    return b"".join(parts)


def frame_end(
    request_id: int,
    data: Buffer = b"",
    app_status: int = 0,
    protocol_status: int = 0,
    stderr_sent: bool = False,
) -> bytes:
    """The end of a response in one buffer: ``data`` as STDOUT records, the empty STDOUT record
    (and the empty STDERR one when ``stderr_sent``) and END_REQUEST.

    ``app_status`` wraps to 32 bits, as the field holds no more.
    """
    _check_field(request_id, _ID_MAX, "request id")
    raw = _raw(data)
    if not isinstance(app_status, int):
        raise TypeError("app status must be an integer")
    _check_field(protocol_status, _STATUS_MAX, "protocol status")
    end = _end_records(
        request_id, app_status & _APP_STATUS_MASK, protocol_status, bool(stderr_sent)
    )
    if len(raw) <= _RECORD_STEP:  # one record at most: the common, small response
        padding = -len(raw) % 8
        head = _HEADER.pack(_VERSION, _STDOUT, request_id, len(raw), padding) if raw else b""
        return b"".join((head, raw, _PADDING[:padding], end))
    parts: list[bytes] = []
    _frame(_STDOUT, request_id, raw, parts)
    parts.append(end)
    return b"".join(parts)


@functools.lru_cache(maxsize=512)
def _end_records(request_id: int, status: int, protocol_status: int, stderr_sent: bool) -> bytes:
    """The empty STDOUT (and STDERR) records and END_REQUEST: the same few bytes for nearly
    every request, so they are packed once per id and status."""
    rid, v = request_id, _VERSION
    if stderr_sent:
        return _END_AFTER_STDERR.pack(
            *(v, _STDOUT, rid, 0, 0, v, _STDERR, rid, 0, 0, v, _END_REQUEST, rid, 8, 0),
            *(status, protocol_status),
        )
    return _END.pack(v, _STDOUT, rid, 0, 0, v, _END_REQUEST, rid, 8, 0, status, protocol_status)


# --- pack and uid ----------------------------------------------------------------------------

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
_PACK_BITS = (4, 5, 6)  # base 16, 32 and 64: the alphabet holds 64 characters.
_UID_RAW_BITS = (0, -1)  # uid() returns the 20 raw digest bytes for these.
_UID_RANDOM_BYTES = 16  # CSPRNG bytes per uid: 128 bits, what makes the id unguessable.
_UID_HEAD = struct.Struct(">QII")  # seconds, microseconds and pid, big-endian.


def _pack_bits(data: bytes, nbits: int) -> str:
    mask = (1 << nbits) - 1
    out: list[str] = []
    acc = held = 0
    for byte in data:
        acc |= byte << held
        held += 8
        while held >= nbits:
            out.append(_ALPHABET[acc & mask])
            acc >>= nbits
            held -= nbits
    if held:
        out.append(_ALPHABET[acc & mask])
    return "".join(out)


def pack(data: bytes | str, nbits: int = 5) -> str:
    """Pack bytes into printable ASCII, ``nbits`` bits (4, 5 or 6) per character, least
    significant bit first. ``str`` input is packed as its UTF-8 bytes."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, bytes):
        raise TypeError("first argument must be a string")
    if not isinstance(nbits, int):
        raise TypeError("second argument must be an integer")
    if nbits not in _PACK_BITS:
        raise ValueError(f"Invalid number of bits: {nbits}")
    return _pack_bits(data, nbits)


def _sha1(data: bytes) -> bytes:
    """SHA-1 digest of ``data`` (exposed so the C twin's own SHA-1 can be checked)."""
    return hashlib.sha1(data).digest()


def _uid_digest(node: bytes) -> bytes:
    micros = time.time_ns() // 1000
    head = _UID_HEAD.pack(micros // 1_000_000, micros % 1_000_000, os.getpid() & 0xFFFFFFFF)
    return _sha1(head + os.urandom(_UID_RANDOM_BYTES) + node)


def uid(nbits: int | None = 5, node: bytes | str | None = None) -> str | bytes:
    """Return a new unique id: SHA-1 over time, pid, 16 CSPRNG bytes and ``node``.

    ``nbits`` 4, 5 or 6 gives 40, 32 or 27 characters (see ``pack``); 0 or -1 the 20 raw bytes.
    """
    if nbits is None:
        nbits = 5
    if not isinstance(nbits, int):
        raise TypeError("first argument must be an integer")
    if isinstance(node, str):
        node = node.encode("utf-8")
    elif node is None:
        node = b""
    elif not isinstance(node, bytes):
        raise TypeError("second argument must be a string")
    if nbits not in _PACK_BITS and nbits not in _UID_RAW_BITS:
        raise ValueError(f"Invalid number of bits: {nbits}")
    digest = _uid_digest(node)
    return digest if nbits in _UID_RAW_BITS else _pack_bits(digest, nbits)


# --- URL percent-encoding --------------------------------------------------------------------

# escape(): controls, space, DEL, bytes >= 0x80 and these; what may not appear in a whole URL.
_ESCAPE_SET = frozenset(b'"#%:<>@[\\]^`{|}') | frozenset(range(0x21)) | frozenset(range(0x7F, 256))
# encode(): also the reserved characters that delimit URL components.
_ENCODE_SET = _ESCAPE_SET | frozenset(b"$&+,/;=?")
_ESCAPE_SAFE = bytes(b for b in range(256) if b not in _ESCAPE_SET)
_ENCODE_SAFE = bytes(b for b in range(256) if b not in _ENCODE_SET)
_ESCAPE_TABLE = tuple(f"%{b:02X}" if b in _ESCAPE_SET else chr(b) for b in range(256))
_ENCODE_TABLE = tuple(f"%{b:02X}" if b in _ENCODE_SET else chr(b) for b in range(256))
_HEX_TO_BYTE = {
    f"{a}{b}".encode(): bytes((int(a + b, 16),))
    for a in "0123456789abcdefABCDEF"
    for b in "0123456789abcdefABCDEF"
}


def _string_bytes(s: object) -> bytes:
    if isinstance(s, str):
        return s.encode("utf-8")
    if isinstance(s, bytes):
        return s
    raise TypeError("first argument must be a string")


def _percent_encode(s: str | bytes, safe: bytes, table: tuple[str, ...]) -> str | bytes:
    data = _string_bytes(s)
    if not data.rstrip(safe):
        return s
    out = "".join(map(table.__getitem__, data))
    return out if isinstance(s, str) else out.encode("ascii")


def url_encode(s: AnyStr, /) -> AnyStr:
    """Percent-encode everything but ``A-Za-z0-9!'()*-._~``: for path, query and fragment
    components. Uppercase hex; ``str`` in, ``str`` out; unchanged input is returned as is."""
    return _percent_encode(s, _ENCODE_SAFE, _ENCODE_TABLE)  # type: ignore[return-value]


def url_escape(s: AnyStr, /) -> AnyStr:
    """Percent-encode what may not appear in a whole URL: controls, space, non-ASCII and
    ``"#%:<>@[\\]^`{|}``; reserved delimiters such as ``/?&=+`` are kept."""
    return _percent_encode(s, _ESCAPE_SAFE, _ESCAPE_TABLE)  # type: ignore[return-value]


def _unquote(data: bytes) -> bytes:
    parts = data.split(b"%")
    if len(parts) == 1:
        return data
    out = [parts[0]]
    for part in parts[1:]:
        byte = _HEX_TO_BYTE.get(part[:2])
        if byte is None:
            out += (b"%", part)
        else:
            out += (byte, part[2:])
    return b"".join(out)


def url_decode(s: AnyStr, /) -> AnyStr:
    """Decode ``%XX`` (either case); malformed ``%`` sequences and ``+`` are kept as they are.

    ``str`` input is decoded as UTF-8 bytes, the result as UTF-8 with errors="replace".
    """
    if isinstance(s, str):
        if "%" not in s:
            return s
        data = s.encode("utf-8")
        decoded = _unquote(data)
        return s if len(decoded) == len(data) else decoded.decode("utf-8", "replace")
    decoded = _unquote(_string_bytes(s))
    return s if len(decoded) == len(s) else decoded


url_unescape = url_decode


# --- Query strings ---------------------------------------------------------------------------

_COOKIE_SEPARATOR = b";"  # cookie mode: names and values trimmed, nameless segments skipped.
_COOKIE_SPACE = b" \t"  # RFC 6265 optional white space around cookie names and values.

QueryValue = str | None | list[str | None]


def _check_charset(charset: object) -> str | None:
    if charset is None:
        return None
    if not isinstance(charset, str):
        raise TypeError("charset must be a str or None")
    charset.encode("utf-8")
    if "\x00" in charset:
        raise ValueError("embedded null character")
    return charset


def _check_separator(separator: object) -> bytes:
    if not isinstance(separator, str):
        raise TypeError("separator must be a str")
    if len(separator) != 1 or not separator.isascii():
        raise ValueError("separator must be a single ASCII character")
    return separator.encode("ascii")


def _unquote_plus(data: bytes) -> bytes:
    return _unquote(data.replace(b"+", b" "))


def _decode_key(raw: bytes, charset: str | None) -> str:
    if charset is None:
        return raw.decode("latin-1")
    return raw.decode(charset, "replace")


def _decode_value(raw: bytes, charset: str | None, tolerant: bool) -> str:
    if charset is None:
        return raw.decode("latin-1")
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        if not tolerant:
            raise
        return raw.decode("latin-1")


def _add(result: dict[str, QueryValue], key: str, value: str | None) -> None:
    if key not in result:
        result[key] = value
        return
    old = result[key]
    if isinstance(old, list):
        old.append(value)
    else:
        result[key] = [old, value]


def decompose_query(
    s: str | bytes,
    charset: str | None = "utf-8",
    tolerant: bool = True,
    separator: str = "&",
) -> dict[str, QueryValue]:
    """Parse a query string (or, with ``separator=";"``, a Cookie header) into a dict.

    Empty segments are skipped; a segment without ``=`` maps to None; a repeated key maps to a
    list of its values in order. ``+`` becomes a space and ``%XX`` a byte in keys and values.
    Values are decoded with ``charset`` (latin-1 when that fails and ``tolerant``, else
    ``UnicodeDecodeError``); keys with ``charset`` and errors="replace". ``charset=None`` decodes
    both as latin-1, which keeps every byte. Cookie mode also trims spaces and tabs around names
    and values and skips segments without a name.
    """
    if not isinstance(s, str | bytes):
        raise TypeError("first argument must be a string")
    charset = _check_charset(charset)
    tolerant = bool(tolerant)
    sep = _check_separator(separator)
    cookie = sep == _COOKIE_SEPARATOR
    result: dict[str, QueryValue] = {}
    for segment in _string_bytes(s).split(sep):
        if not segment:
            continue
        raw_key, eq, raw_value = segment.partition(b"=")
        if cookie:
            raw_key, raw_value = raw_key.strip(_COOKIE_SPACE), raw_value.strip(_COOKIE_SPACE)
            if not raw_key:
                continue
        key = _decode_key(_unquote_plus(raw_key), charset)
        value = _decode_value(_unquote_plus(raw_value), charset, tolerant) if eq else None
        _add(result, key, value)
    return result


# --- XML -------------------------------------------------------------------------------------


def xml_escape(s: AnyStr, /) -> AnyStr:
    """Replace ``&``, ``<``, ``>`` and ``"`` by their entities; nothing else."""
    if isinstance(s, str):
        out: str | bytes = (
            s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        )
    elif isinstance(s, bytes):
        out = (
            s.replace(b"&", b"&amp;")
            .replace(b"<", b"&lt;")
            .replace(b">", b"&gt;")
            .replace(b'"', b"&quot;")
        )
    else:
        raise TypeError("first argument must be a string")
    return s if len(out) == len(s) else out  # type: ignore[return-value]


def xml_unescape(s: AnyStr, /) -> AnyStr:
    """Replace the entities ``&amp;``, ``&lt;``, ``&gt;`` and ``&quot;``; others are kept."""
    if isinstance(s, str):
        out: str | bytes = (
            s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
        )
    elif isinstance(s, bytes):
        out = (
            s.replace(b"&lt;", b"<")
            .replace(b"&gt;", b">")
            .replace(b"&quot;", b'"')
            .replace(b"&amp;", b"&")
        )
    else:
        raise TypeError("first argument must be a str or unicode")
    return s if len(out) == len(s) else out  # type: ignore[return-value]
