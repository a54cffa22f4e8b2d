#!/usr/bin/env python3
"""Fuzz the multipart/form-data parser with bodies fed in pieces.

Checks: only ``FormError`` (400 or 413) escapes; the same body fed whole and in pieces gives
the same fields, files (by content) or error; field values stay within ``max_field_size``; every
temp file is 0600 and gone after ``cleanup()``, whatever happened.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile

import atheris
from _harness import cuts, instrumented, main

with instrumented():
    from smisk.core.forms import FormError, MultipartParser

SPOOL = tempfile.mkdtemp(prefix="smisk-fuzz-multipart-")
BOUNDARIES = [b"b", b"XyZ", b"--", b"a b", b"0123456789" * 7]


def _parse(boundary: bytes, pieces: list[bytes], limits: tuple[int, int, int]) -> object:
    parser = MultipartParser(
        boundary,
        max_size=limits[0],
        max_parts=limits[1],
        max_field_size=limits[2],
        spool_dir=SPOOL,
        charset="utf-8",
    )
    try:
        for piece in pieces:
            parser.feed(piece)
        parser.close()
        return _summary(parser, limits[2])
    except FormError as error:
        assert error.status in (400, 413), error.status
        return ("error", error.status)
    finally:
        parser.cleanup()
        assert os.listdir(SPOOL) == [], os.listdir(SPOOL)


def _summary(parser: MultipartParser, max_field_size: int) -> object:
    files = []
    for name, info in sorted(parser.files.items()):
        for item in info if isinstance(info, list) else [info]:
            mode = stat.S_IMODE(os.stat(item["path"]).st_mode)
            assert mode == 0o600, oct(mode)
            with open(item["path"], "rb") as handle:
                content = handle.read()
            assert len(content) == item["size"]
            files.append((name, item["filename"], item["content_type"], content))
    for values in parser.fields.values():
        for value in values if isinstance(values, list) else [values]:
            assert (
                max_field_size < 0
                or len(value.encode("utf-8", "surrogatepass")) <= 4 * max_field_size
            )
    return ("ok", parser.fields, files)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    boundary = fdp.PickValueInList(BOUNDARIES)
    limits = (
        fdp.ConsumeIntInRange(-1, 4096),
        fdp.ConsumeIntInRange(-1, 20),
        fdp.ConsumeIntInRange(-1, 256),
    )
    body = fdp.ConsumeBytes(fdp.remaining_bytes() // 2)
    if fdp.ConsumeBool():  # start with a valid delimiter so the fuzzer reaches the parts
        body = b"--" + boundary + b"\r\n" + body
    pieces = cuts(fdp, body)
    whole = _parse(boundary, [body], limits)
    split = _parse(boundary, pieces, limits)
    if whole != split:
        raise AssertionError(f"whole {whole!r} != split {split!r}")


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
