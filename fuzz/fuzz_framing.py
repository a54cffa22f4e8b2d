#!/usr/bin/env python3
"""Fuzz FastCGI record framing: C vs Python ``split_records``, ``frame_records``, ``frame_end``.

Checks: both twins return the same records (content type, view or copy, and bytes), the same end
offset, or raise the same error, on any bytes from any offset, as bytes, bytearray and
memoryview; both frame any payload and any header fields identically; what one twin frames the
other splits back into the same payload.
"""

from __future__ import annotations

import sys

import atheris
from _harness import instrumented, main

with instrumented():
    from _differential import outcome, same_outcome

    from smisk import _codec, _codec_py

FIELD_EDGES = [-1, 0, 1, 255, 256, 65535, 65536, 2**32, 2**64, -(2**64)]


def _split(codec: object, *args: object) -> tuple[object, ...]:
    result = outcome(codec.split_records, *args)  # type: ignore[attr-defined]
    if result[0] == "raised":
        return result
    records, end = result[2]
    return ([(t, i, type(c).__name__, bytes(c)) for t, i, c in records], end)


def _field(fdp: atheris.FuzzedDataProvider) -> int:
    if fdp.ConsumeBool():
        return int(fdp.PickValueInList(FIELD_EDGES))
    return int(fdp.ConsumeIntInRange(0, 0xFFFF))


def _check_split(fdp: atheris.FuzzedDataProvider, raw: bytes) -> None:
    offset = fdp.ConsumeIntInRange(-1, 24)
    view_from = fdp.ConsumeIntInRange(-1, 70000)
    for kind in (bytes, bytearray, memoryview):
        data = kind(raw)
        expected = _split(_codec_py, data, offset, view_from)
        got = _split(_codec, data, offset, view_from)
        if got != expected:
            raise AssertionError(f"split_records: C {got!r} != Python {expected!r}")


def _check_framing(fdp: atheris.FuzzedDataProvider, raw: bytes) -> None:
    record_type, request_id = _field(fdp), _field(fdp)
    same_outcome("frame_records", record_type, request_id, raw)
    app_status = fdp.ConsumeInt(8) if fdp.ConsumeBool() else _field(fdp)
    protocol_status, stderr_sent = _field(fdp), fdp.ConsumeBool()
    same_outcome("frame_end", request_id, raw, app_status, protocol_status, stderr_sent)
    if not (0 <= record_type <= 255 and 0 <= request_id <= 0xFFFF):
        return
    framed = _codec.frame_records(record_type, request_id, raw)
    records, end = _codec_py.split_records(framed)
    assert end == len(framed)
    assert b"".join(bytes(content) for _, _, content in records) == raw


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    raw = fdp.ConsumeBytes(fdp.remaining_bytes() // 2)
    _check_split(fdp, raw)
    _check_framing(fdp, raw)


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
