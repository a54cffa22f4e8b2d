#!/usr/bin/env python3
"""Fuzz ``read_request_head``: C vs Python, and the Python twin against the records themselves.

Checks: both twins return the same head (id, flags, pairs, input_done) or None, or raise the same
error, on any bytes with any limits, as bytes, bytearray and memoryview; and the head is exactly
what ``split_records`` and ``decode_params`` make of the same bytes: a BEGIN_REQUEST for the
responder role, its PARAMS up to the empty one, optionally the empty STDIN, nothing else, within
the limits. Any other input must give None.
"""

from __future__ import annotations

import sys

import atheris
from _harness import instrumented, main

with instrumented():
    from _differential import same_outcome

    from smisk import _codec_py

LIMIT_EDGES = [-1, 0, 1, 2, 2**63 - 1, 2**63, 2**64, -(2**64), True, False]
NO_LIMIT = 1 << 20
BEGIN_REQUEST, PARAMS, STDIN, RESPONDER = 1, 4, 5, 1
KINDS = (bytes, bytearray, memoryview)

Head = tuple[int, int, list[tuple[bytes, bytes]], bool]


def _limit(fdp: atheris.FuzzedDataProvider) -> int:
    """A limit: mostly none at all, else an edge value or a small count."""
    choice = fdp.ConsumeIntInRange(0, 3)  # 0 (what a seed's zero filler gives): no limit
    if choice == 2:
        return int(fdp.PickValueInList(LIMIT_EDGES))
    if choice == 3:
        return int(fdp.ConsumeIntInRange(-2, 3000))
    return NO_LIMIT


def _params(records: list[tuple[int, int, bytes]], request_id: int) -> list[bytes] | None:
    """The PARAMS contents when ``records`` are that id's PARAMS stream up to its empty record."""
    if not records or any(t != PARAMS or i != request_id for t, i, _ in records):
        return None
    contents = [bytes(content) for _, _, content in records]
    if contents[-1] or not all(contents[:-1]):
        return None
    return contents


def _expected(raw: bytes, max_bytes: int, max_count: int) -> Head | None:
    """What ``read_request_head`` must return, worked out from the records one by one."""
    records, end = _codec_py.split_records(raw)
    if end != len(raw) or not records:
        return None
    (kind, request_id, body), rest = records[0], records[1:]
    if kind != BEGIN_REQUEST or request_id == 0 or len(body) != 8:
        return None
    if (body[0] << 8 | body[1]) != RESPONDER:
        return None
    input_done = bool(rest) and rest[-1] == (STDIN, request_id, b"")
    contents = _params(rest[:-1] if input_done else rest, request_id)
    if contents is None:
        return None
    size = sum(map(len, contents))
    if size and size > max_bytes:
        return None
    try:
        pairs = _codec_py.decode_params(b"".join(contents))
    except ValueError:
        return None
    if len(pairs) > max_count:
        return None
    return request_id, body[2], pairs, input_done


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    raw = fdp.ConsumeBytes(fdp.remaining_bytes() // 2)
    max_bytes, max_count = _limit(fdp), _limit(fdp)
    for kind in KINDS:
        same_outcome("read_request_head", kind(raw), max_bytes, max_count)
    head = _codec_py.read_request_head(raw, max_bytes, max_count)
    expected = _expected(raw, max_bytes, max_count)
    if head != expected:
        raise AssertionError(f"read_request_head: {head!r} != records say {expected!r}")


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
