"""Pure-Python codecs: the reference twin of the C extension ``smisk._codec``.

Rules: no I/O, no imports beyond the standard library. Every function here has a C twin that must
give identical results, raise the same exception types and messages.
"""

from __future__ import annotations

__all__ = ["decode_params", "encode_params"]

_SHORT_LENGTH_MAX = 127  # FastCGI: lengths up to 127 fit in one byte, larger ones take four.
_LONG_LENGTH_MASK = 0x7FFFFFFF  # FastCGI: the top bit of a 4-byte length only flags the form.


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ValueError("truncated name-value pair length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if pos + 4 > len(data):
        raise ValueError("truncated name-value pair length")
    length = int.from_bytes(data[pos : pos + 4], "big") & _LONG_LENGTH_MASK
    return length, pos + 4


def decode_params(data: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a complete FastCGI name-value pair stream into ``(name, value)`` pairs, in order.

    Raises ``ValueError`` when a length runs past the end of ``data``.
    """
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


def encode_params(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Encode ``(name, value)`` byte pairs as a FastCGI name-value pair stream."""
    parts: list[bytes] = []
    for name, value in pairs:
        parts += (_encode_length(len(name)), _encode_length(len(value)), name, value)
    return b"".join(parts)
