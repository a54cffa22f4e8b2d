#!/usr/bin/env python3
"""Fuzz the C codec against its Python twin: URL and XML escaping, query parsing, pack, headers.

Checks: for every function both twins return equal values of the same type (and the same
identity to the argument) or raise the same exception with the same message, on bytes, on text
decoded from the input and on text with lone surrogates.
"""

from __future__ import annotations

import sys

import atheris
from _harness import instrumented, main

with instrumented():
    from _differential import same_outcome

STRING_FUNCTIONS = [
    "url_encode",
    "url_escape",
    "url_decode",
    "url_unescape",
    "xml_escape",
    "xml_unescape",
]
CHARSETS = ["utf-8", "latin-1", "ascii", "cp1252", "utf-16", None, "bogus"]
SEPARATORS = ["&", ";", ","]


def _values(fdp: atheris.FuzzedDataProvider) -> list[object]:
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512))
    text = raw.decode("utf-8", "replace")
    values: list[object] = [raw, text, raw.decode("latin-1")]
    if fdp.ConsumeBool():
        values.append(raw.decode("utf-8", "surrogateescape"))
    if fdp.ConsumeBool():
        values.append(fdp.ConsumeUnicode(64))
    return values


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    charset = fdp.PickValueInList(CHARSETS)
    tolerant = fdp.ConsumeBool()
    separator = fdp.PickValueInList(SEPARATORS)
    nbits = fdp.ConsumeIntInRange(-2, 8)
    offset = fdp.ConsumeIntInRange(0, 16)
    for value in _values(fdp):
        for name in STRING_FUNCTIONS:
            same_outcome(name, value)
        same_outcome("decompose_query", value, charset, tolerant, separator)
        same_outcome("pack", value, nbits)
        if isinstance(value, bytes):
            same_outcome("parse_record_header", value, offset)


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
